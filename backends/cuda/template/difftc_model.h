/* The C API of a difftc CUDA artifact. Generated code implements it in kernels.cu; the same
 * API serves every model, whose inputs, outputs and params it describes at run time.
 *
 *   difftc_session *s;
 *   if (difftc_create(weights, n_weights, &s) != DIFFTC_OK) { puts(difftc_last_error(NULL)); ... }
 *   difftc_tensor out[DIFFTC_MAX_OUTPUTS];
 *   if (difftc_run(s, inputs, n_inputs, out) != DIFFTC_OK) puts(difftc_last_error(s));
 *   ... out[i].data is host memory owned by the session, valid until the next run ...
 *   difftc_destroy(s);
 *
 * Tensors are host memory in the model's dtype, row-major, 16-bit floats as their bits. */
#ifndef DIFFTC_MODEL_H
#define DIFFTC_MODEL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum difftc_dtype { DIFFTC_F32 = 0, DIFFTC_F16, DIFFTC_BF16, DIFFTC_I32, DIFFTC_I8, DIFFTC_U8, DIFFTC_BOOL };

enum difftc_status {
  DIFFTC_OK = 0,
  DIFFTC_ERROR_ARGUMENT,      /* a null pointer or a bad count */
  DIFFTC_ERROR_MISSING,       /* a param or input the model needs was not given */
  DIFFTC_ERROR_UNKNOWN,       /* a tensor the model does not have was given */
  DIFFTC_ERROR_MISMATCH,      /* a tensor of the wrong dtype or shape, or dims that disagree */
  DIFFTC_ERROR_OUT_OF_MEMORY,
  DIFFTC_ERROR_CUDA,          /* the CUDA runtime failed */
  DIFFTC_ERROR_KERNEL         /* a kernel reported an error (a gather index out of range) */
};

#define DIFFTC_MAX_RANK 8
#define DIFFTC_MAX_OUTPUTS 64

typedef struct {
  const char *name;
  int dtype; /* enum difftc_dtype */
  int rank;
  int64_t shape[DIFFTC_MAX_RANK];
  const void *data;
} difftc_tensor;

typedef struct difftc_session difftc_session;

/** Uploads the weights (every param, by name, dtype and shape) and returns a session. */
int difftc_create(const difftc_tensor *weights, int count, difftc_session **session);
/** Runs the model on `inputs`; fills `outputs[0 .. difftc_num_outputs() - 1]`. */
int difftc_run(difftc_session *session, const difftc_tensor *inputs, int count, difftc_tensor *outputs);
void difftc_destroy(difftc_session *session);
/** The message of the last error, of a session or (NULL) of the last failed create. */
const char *difftc_last_error(const difftc_session *session);
/** Milliseconds the kernels of the last run took on the device (CUDA events; copies excluded). */
double difftc_last_kernel_ms(const difftc_session *session);

/** What the model takes and gives: names, dtypes, ranks (sizes of -1 are dims bound at run time). */
const char *difftc_model_name(void);
int difftc_num_inputs(void);
int difftc_num_outputs(void);
int difftc_num_params(void);
const char *difftc_input_name(int i);
const char *difftc_output_name(int i);
const char *difftc_param_name(int i);

#ifdef __cplusplus
}
#endif

#endif
