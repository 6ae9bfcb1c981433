// The standalone runner of a difftc CUDA artifact: reads the weights and the inputs from
// safetensors files, runs the model through its C API, writes the outputs to a safetensors
// file. Errors go to stderr with exit status 1.
//
//   ./runner weights.safetensors inputs.safetensors outputs.safetensors
//
// With DIFFTC_REPEAT=n in the environment it runs the model n more times and prints the
// median time of its kernels (CUDA events, copies excluded): how bench/cuda-device.sh times it.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "difftc_model.h"
#include "difftc_safetensors.h"

/** The model's dtype of a file dtype, or -1 for one the model cannot take (F64, I64). */
static int model_dtype(int file_dtype) {
  switch (file_dtype) {
    case DT_F32: return DIFFTC_F32;
    case DT_F16: return DIFFTC_F16;
    case DT_BF16: return DIFFTC_BF16;
    case DT_I32: return DIFFTC_I32;
    case DT_I8: return DIFFTC_I8;
    case DT_U8: return DIFFTC_U8;
    case DT_BOOL: return DIFFTC_BOOL;
    default: return -1;
  }
}

static int file_dtype(int model) {
  static const int FILE_DTYPES[] = {DT_F32, DT_F16, DT_BF16, DT_I32, DT_I8, DT_U8, DT_BOOL};
  return FILE_DTYPES[model];
}

/** The file's tensors as C API tensors; the data is copied so that it is aligned. */
static difftc_tensor *tensors_of(const char *path, dt_file *file, int *count) {
  difftc_tensor *out = (difftc_tensor *)calloc((size_t)file->count + 1, sizeof(difftc_tensor));
  if (!out) {
    fprintf(stderr, "%s: out of memory\n", path);
    exit(1);
  }
  for (int i = 0; i < file->count; i++) {
    const dt_tensor *t = &file->tensors[i];
    int dtype = model_dtype(t->dtype);
    if (dtype < 0) {
      fprintf(stderr, "%s: tensor \"%s\" has dtype %s, which difftc models do not take (convert it to f32 or i32)\n", path, t->name, dt_dtype_name(t->dtype));
      exit(1);
    }
    if (t->rank > DIFFTC_MAX_RANK) {
      fprintf(stderr, "%s: tensor \"%s\" has rank %d, more than %d\n", path, t->name, t->rank, DIFFTC_MAX_RANK);
      exit(1);
    }
    void *data = malloc(t->nbytes > 0 ? t->nbytes : 1);
    if (!data) {
      fprintf(stderr, "%s: out of memory for tensor \"%s\"\n", path, t->name);
      exit(1);
    }
    memcpy(data, dt_data(file, t), t->nbytes);
    out[i].name = t->name;
    out[i].dtype = dtype;
    out[i].rank = t->rank;
    for (int a = 0; a < t->rank; a++) out[i].shape[a] = t->shape[a];
    out[i].data = data;
  }
  *count = file->count;
  return out;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s WEIGHTS.safetensors INPUTS.safetensors OUTPUTS.safetensors (model %s)\n", argv[0], difftc_model_name());
    return 2;
  }
  char err[1024];
  dt_file weights_file, inputs_file;
  if (dt_read(argv[1], &weights_file, err, sizeof err) != 0 || dt_read(argv[2], &inputs_file, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  int n_weights, n_inputs;
  difftc_tensor *weights = tensors_of(argv[1], &weights_file, &n_weights);
  difftc_tensor *inputs = tensors_of(argv[2], &inputs_file, &n_inputs);
  difftc_session *session;
  if (difftc_create(weights, n_weights, &session) != DIFFTC_OK) {
    fprintf(stderr, "%s: %s\n", argv[1], difftc_last_error(NULL));
    return 1;
  }
  difftc_tensor outputs[DIFFTC_MAX_OUTPUTS];
  if (difftc_run(session, inputs, n_inputs, outputs) != DIFFTC_OK) {
    fprintf(stderr, "%s: %s\n", argv[2], difftc_last_error(session));
    return 1;
  }
  const char *repeat = getenv("DIFFTC_REPEAT");
  if (repeat && atoi(repeat) > 0) {
    int runs = atoi(repeat);
    double *ms = (double *)malloc(sizeof(double) * (size_t)runs);
    for (int r = 0; r < runs; r++) {
      if (difftc_run(session, inputs, n_inputs, outputs) != DIFFTC_OK) {
        fprintf(stderr, "%s: %s\n", argv[2], difftc_last_error(session));
        return 1;
      }
      ms[r] = difftc_last_kernel_ms(session);
    }
    for (int a = 1; a < runs; a++)
      for (int b = a; b > 0 && ms[b - 1] > ms[b]; b--) {
        double t = ms[b];
        ms[b] = ms[b - 1], ms[b - 1] = t;
      }
    printf("kernels: median %.4f ms over %d runs (min %.4f, max %.4f)\n", ms[runs / 2], runs, ms[0], ms[runs - 1]);
    free(ms);
  }
  int n = difftc_num_outputs();
  const char *names[DIFFTC_MAX_OUTPUTS];
  int dtypes[DIFFTC_MAX_OUTPUTS], ranks[DIFFTC_MAX_OUTPUTS];
  const int64_t *shapes[DIFFTC_MAX_OUTPUTS];
  const void *data[DIFFTC_MAX_OUTPUTS];
  for (int i = 0; i < n; i++) {
    names[i] = outputs[i].name;
    dtypes[i] = file_dtype(outputs[i].dtype);
    ranks[i] = outputs[i].rank;
    shapes[i] = outputs[i].shape;
    data[i] = outputs[i].data;
  }
  if (dt_write(argv[3], n, names, dtypes, ranks, shapes, data, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  difftc_destroy(session);
  for (int i = 0; i < n_weights; i++) free((void *)weights[i].data);
  for (int i = 0; i < n_inputs; i++) free((void *)inputs[i].data);
  free(weights), free(inputs);
  dt_free(&weights_file), dt_free(&inputs_file);
  return 0;
}
