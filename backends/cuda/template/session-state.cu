// ---- difftc CUDA artifact: the session state (template; the model's tables follow) ----
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "difftc_model.h"

/** A size: coefficient times dims (indices into the session's dims). */
typedef struct { long long coefficient; int count; int dims[8]; } dt_size;
/** An input, output or param: its dtype and shape (a size >= 0, or -1 - k for dim k). */
typedef struct { const char *name; int dtype; int rank; long long shape[DIFFTC_MAX_RANK]; int buffer; } dt_spec;
enum { DT_INPUT, DT_PARAM, DT_CONST, DT_TEMP };
typedef struct { int kind; int dtype; dt_size size; int slot; } dt_buffer;

static const int DT_ELEMENT_BYTES[] = {4, 2, 2, 4, 1, 1, 1};

struct difftc_session {
  long long dims[16];
  void **device;        /* per buffer: where its elements live on the device */
  void **slots;         /* temporaries' storage, shared by liveness */
  long long *slot_bytes;
  void **inputs;        /* per input: device copy */
  long long *input_bytes;
  void **outputs;       /* per output: host copy handed to the caller */
  long long *output_bytes;
  int *errors;          /* the kernels' error record: code, then values */
  cudaEvent_t kernels_start, kernels_end;  /* around the launches of the last run */
  float kernel_ms;
  char error[512];
};

static char dt_create_error[512];

static int dt_fail(difftc_session *s, int status, const char *format, ...) __attribute__((format(printf, 3, 4)));
#include <stdarg.h>
static int dt_fail(difftc_session *s, int status, const char *format, ...) {
  va_list args;
  va_start(args, format);
  vsnprintf(s ? s->error : dt_create_error, sizeof dt_create_error, format, args);
  va_end(args);
  return status;
}

static long long dt_eval(const dt_size *size, const long long *dims) {
  long long v = size->coefficient;
  for (int i = 0; i < size->count; i++) v *= dims[size->dims[i]];
  return v;
}

#define DT_CUDA(s, call)                                                                           \
  do {                                                                                             \
    cudaError_t dt_status = (call);                                                                \
    if (dt_status != cudaSuccess) return dt_fail(s, DIFFTC_ERROR_CUDA, "%s: %s", #call, cudaGetErrorString(dt_status)); \
  } while (0)

/** After a launch: its failure, or the failure of the kernel run (launches are asynchronous). */
static int dt_checked(difftc_session *s) {
  DT_CUDA(s, cudaGetLastError());
  DT_CUDA(s, cudaDeviceSynchronize());
  return DIFFTC_OK;
}
