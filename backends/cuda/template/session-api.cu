// ---- difftc CUDA artifact: the C API over the model's tables (template) ----------------

static const char *dt_dtype_name(int dtype) {
  static const char *const names[] = {"f32", "f16", "bf16", "i32", "i8", "u8", "bool"};
  return dtype >= 0 && dtype < 7 ? names[dtype] : "?";
}

static void dt_format_shape(char *out, size_t size, int rank, const long long *shape) {
  size_t used = (size_t)snprintf(out, size, "[");
  for (int i = 0; i < rank && used < size; i++) {
    if (shape[i] >= 0) used += (size_t)snprintf(out + used, size - used, "%s%lld", i ? ", " : "", shape[i]);
    else used += (size_t)snprintf(out + used, size - used, "%s%s", i ? ", " : "", DT_DIM_NAMES[-1 - shape[i]]);
  }
  if (used < size) snprintf(out + used, size - used, "]");
}

/** Finds `spec`'s tensor among `given`, checks its dtype and rank, and binds or checks its dims. */
static int dt_bind(difftc_session *s, const char *what, const dt_spec *spec, const difftc_tensor *given, int count, long long *dims, const difftc_tensor **found) {
  char want[256];
  dt_format_shape(want, sizeof want, spec->rank, spec->shape);
  *found = NULL;
  for (int i = 0; i < count; i++)
    if (given[i].name && strcmp(given[i].name, spec->name) == 0) *found = &given[i];
  if (!*found) return dt_fail(s, DIFFTC_ERROR_MISSING, "missing %s \"%s\": %s%s", what, spec->name, dt_dtype_name(spec->dtype), want);
  const difftc_tensor *t = *found;
  if (t->dtype != spec->dtype || t->rank != spec->rank) return dt_fail(s, DIFFTC_ERROR_MISMATCH, "%s \"%s\" must be %s%s, got %s of rank %d", what, spec->name, dt_dtype_name(spec->dtype), want, dt_dtype_name(t->dtype), t->rank);
  if (!t->data && t->rank >= 0) {
    long long n = 1;
    for (int i = 0; i < t->rank; i++) n *= t->shape[i];
    if (n > 0) return dt_fail(s, DIFFTC_ERROR_ARGUMENT, "%s \"%s\" has no data", what, spec->name);
  }
  for (int i = 0; i < spec->rank; i++) {
    long long d = spec->shape[i], got = t->shape[i];
    if (got < 0 || got > 2147483647LL) return dt_fail(s, DIFFTC_ERROR_MISMATCH, "%s \"%s\" has size %lld on axis %d", what, spec->name, got, i);
    if (d >= 0 && got != d) return dt_fail(s, DIFFTC_ERROR_MISMATCH, "%s \"%s\" must have shape %s, got size %lld on axis %d", what, spec->name, want, got, i);
    if (d < 0) {
      long long *dim = &dims[-1 - d];
      if (*dim < 0) *dim = got;
      else if (*dim != got) return dt_fail(s, DIFFTC_ERROR_MISMATCH, "%s \"%s\" must have shape %s with %s = %lld, got %lld", what, spec->name, want, DT_DIM_NAMES[-1 - d], *dim, got);
    }
  }
  return DIFFTC_OK;
}

static int dt_unknown(difftc_session *s, const char *what, const dt_spec *specs, int n, const difftc_tensor *given, int count) {
  for (int i = 0; i < count; i++)
    for (int j = 0; j < i; j++)
      if (given[i].name && given[j].name && strcmp(given[i].name, given[j].name) == 0) return dt_fail(s, DIFFTC_ERROR_ARGUMENT, "%s \"%s\" is given twice", what, given[i].name);
  for (int i = 0; i < count; i++) {
    int known = 0;
    for (int j = 0; j < n; j++) known |= given[i].name && strcmp(given[i].name, specs[j].name) == 0;
    if (!known) return dt_fail(s, DIFFTC_ERROR_UNKNOWN, "the model has no %s \"%s\"", what, given[i].name ? given[i].name : "(null)");
  }
  return DIFFTC_OK;
}

static long long dt_bytes(const dt_spec *spec, const long long *dims) {
  long long n = DT_ELEMENT_BYTES[spec->dtype];
  for (int i = 0; i < spec->rank; i++) n *= spec->shape[i] >= 0 ? spec->shape[i] : dims[-1 - spec->shape[i]];
  return n;
}

/** Device memory of at least `bytes` in *p (grown, never shrunk; 1 byte for an empty tensor). */
static int dt_reserve(difftc_session *s, void **p, long long *have, long long bytes) {
  if (*p && *have >= bytes) return DIFFTC_OK;
  if (*p) DT_CUDA(s, cudaFree(*p));
  *p = NULL;
  DT_CUDA(s, cudaMalloc(p, (size_t)(bytes > 0 ? bytes : 1)));
  *have = bytes;
  return DIFFTC_OK;
}

extern "C" int difftc_create(const difftc_tensor *weights, int count, difftc_session **out) {
  if (!out || count < 0 || (count > 0 && !weights)) return dt_fail(NULL, DIFFTC_ERROR_ARGUMENT, "difftc_create: null pointer or negative count");
  *out = NULL;
  difftc_session *s = (difftc_session *)calloc(1, sizeof(difftc_session));
  if (!s) return dt_fail(NULL, DIFFTC_ERROR_OUT_OF_MEMORY, "difftc_create: out of memory");
  s->device = (void **)calloc(DT_NUM_BUFFERS, sizeof(void *));
  s->slots = (void **)calloc(DT_NUM_SLOTS + 1, sizeof(void *));
  s->slot_bytes = (long long *)calloc(DT_NUM_SLOTS + 1, sizeof(long long));
  s->inputs = (void **)calloc(DT_NUM_INPUTS + 1, sizeof(void *));
  s->input_bytes = (long long *)calloc(DT_NUM_INPUTS + 1, sizeof(long long));
  s->outputs = (void **)calloc(DT_NUM_OUTPUTS + 1, sizeof(void *));
  s->output_bytes = (long long *)calloc(DT_NUM_OUTPUTS + 1, sizeof(long long));
  int status = !s->device || !s->slots || !s->slot_bytes || !s->inputs || !s->input_bytes || !s->outputs || !s->output_bytes ? dt_fail(s, DIFFTC_ERROR_OUT_OF_MEMORY, "difftc_create: out of memory") : DIFFTC_OK;
  long long dims[16];
  for (int i = 0; i < 16; i++) dims[i] = -1;
  if (!status) status = dt_unknown(s, "param", DT_PARAMS, DT_NUM_PARAMS, weights, count);
  for (int i = 0; i < DT_NUM_PARAMS && !status; i++) {
    const difftc_tensor *t;
    status = dt_bind(s, "param", &DT_PARAMS[i], weights, count, dims, &t);
    if (status) break;
    long long bytes = dt_bytes(&DT_PARAMS[i], dims), have = 0;
    status = dt_reserve(s, &s->device[DT_PARAMS[i].buffer], &have, bytes);
    if (!status && bytes > 0 && cudaMemcpy(s->device[DT_PARAMS[i].buffer], t->data, (size_t)bytes, cudaMemcpyHostToDevice) != cudaSuccess) status = dt_fail(s, DIFFTC_ERROR_CUDA, "copying param \"%s\" to the device failed", DT_PARAMS[i].name);
  }
  if (!status) status = dt_upload_consts(s);
  if (!status && cudaMalloc((void **)&s->errors, 8 * sizeof(int)) != cudaSuccess) status = dt_fail(s, DIFFTC_ERROR_CUDA, "allocating the error record failed");
  if (!status && (cudaEventCreate(&s->kernels_start) != cudaSuccess || cudaEventCreate(&s->kernels_end) != cudaSuccess)) status = dt_fail(s, DIFFTC_ERROR_CUDA, "creating timing events failed");
  if (status) {
    memcpy(dt_create_error, s->error, sizeof dt_create_error);
    difftc_destroy(s);
    return status;
  }
  *out = s;
  return DIFFTC_OK;
}

extern "C" int difftc_run(difftc_session *s, const difftc_tensor *inputs, int count, difftc_tensor *outputs) {
  if (!s || !outputs || count < 0 || (count > 0 && !inputs)) return dt_fail(s, DIFFTC_ERROR_ARGUMENT, "difftc_run: null pointer or negative count");
  long long dims[16];
  for (int i = 0; i < 16; i++) dims[i] = -1;
  int status = dt_unknown(s, "input", DT_INPUTS, DT_NUM_INPUTS, inputs, count);
  const difftc_tensor *given[DT_NUM_INPUTS + 1];
  for (int i = 0; i < DT_NUM_INPUTS && !status; i++) status = dt_bind(s, "input", &DT_INPUTS[i], inputs, count, dims, &given[i]);
  if (status) return status;
  for (int d = 0; d < DT_NUM_DIMS; d++)
    if (dims[d] < 0) return dt_fail(s, DIFFTC_ERROR_MISSING, "dim %s is not bound by any input", DT_DIM_NAMES[d]);
  for (int d = 0; d < DT_NUM_DIMS; d++) s->dims[d] = dims[d];
  // Kernels index with int and step grid-stride loops by up to 65535 * 256 threads past the end.
  for (int b = 0; b < DT_NUM_BUFFERS; b++) {
    long long elements = dt_eval(&DT_BUFFERS[b].size, dims);
    if (elements > 2147483647LL - 65535LL * 1024) return dt_fail(s, DIFFTC_ERROR_MISMATCH, "a tensor of %lld elements is past what the kernels' 32-bit indices address", elements);
  }
  for (int i = 0; i < DT_NUM_SLOTS; i++) {
    long long bytes = dt_eval(&DT_SLOTS[i], dims);
    if ((status = dt_reserve(s, &s->slots[i], &s->slot_bytes[i], bytes))) return status;
  }
  for (int i = 0; i < DT_NUM_INPUTS; i++) {
    long long bytes = dt_bytes(&DT_INPUTS[i], dims);
    if ((status = dt_reserve(s, &s->inputs[i], &s->input_bytes[i], bytes))) return status;
    if (bytes > 0) DT_CUDA(s, cudaMemcpy(s->inputs[i], given[i]->data, (size_t)bytes, cudaMemcpyHostToDevice));
    s->device[DT_INPUTS[i].buffer] = s->inputs[i];
  }
  for (int b = 0; b < DT_NUM_BUFFERS; b++)
    if (DT_BUFFERS[b].kind == DT_TEMP) s->device[b] = s->slots[DT_BUFFERS[b].slot];
  DT_CUDA(s, cudaEventRecord(s->kernels_start, 0));
  for (int k = 0; k < DT_NUM_KERNELS; k++)
    if ((status = DT_LAUNCHES[k](s))) return status;
  DT_CUDA(s, cudaEventRecord(s->kernels_end, 0));
  DT_CUDA(s, cudaEventSynchronize(s->kernels_end));
  DT_CUDA(s, cudaEventElapsedTime(&s->kernel_ms, s->kernels_start, s->kernels_end));
  for (int i = 0; i < DT_NUM_OUTPUTS; i++) {
    const dt_spec *o = &DT_OUTPUTS[i];
    long long bytes = dt_bytes(o, dims);
    if (s->output_bytes[i] < bytes || !s->outputs[i]) {
      free(s->outputs[i]);
      s->outputs[i] = malloc((size_t)(bytes > 0 ? bytes : 1));
      if (!s->outputs[i]) return dt_fail(s, DIFFTC_ERROR_OUT_OF_MEMORY, "no host memory for output \"%s\"", o->name);
      s->output_bytes[i] = bytes;
    }
    if (bytes > 0) DT_CUDA(s, cudaMemcpy(s->outputs[i], s->device[o->buffer], (size_t)bytes, cudaMemcpyDeviceToHost));
    outputs[i].name = o->name;
    outputs[i].dtype = o->dtype;
    outputs[i].rank = o->rank;
    for (int a = 0; a < o->rank; a++) outputs[i].shape[a] = o->shape[a] >= 0 ? o->shape[a] : dims[-1 - o->shape[a]];
    outputs[i].data = s->outputs[i];
  }
  return DIFFTC_OK;
}

extern "C" void difftc_destroy(difftc_session *s) {
  if (!s) return;
  for (int b = 0; s->device && b < DT_NUM_BUFFERS; b++)
    if (DT_BUFFERS[b].kind == DT_PARAM || DT_BUFFERS[b].kind == DT_CONST) cudaFree(s->device[b]);
  for (int i = 0; s->slots && i < DT_NUM_SLOTS; i++) cudaFree(s->slots[i]);
  for (int i = 0; s->inputs && i < DT_NUM_INPUTS; i++) cudaFree(s->inputs[i]);
  for (int i = 0; s->outputs && i < DT_NUM_OUTPUTS; i++) free(s->outputs[i]);
  if (s->errors) cudaFree(s->errors);
  if (s->kernels_start) cudaEventDestroy(s->kernels_start);
  if (s->kernels_end) cudaEventDestroy(s->kernels_end);
  free(s->device), free(s->slots), free(s->slot_bytes), free(s->inputs), free(s->input_bytes), free(s->outputs), free(s->output_bytes);
  free(s);
}

extern "C" const char *difftc_last_error(const difftc_session *s) { return s ? s->error : dt_create_error; }
extern "C" double difftc_last_kernel_ms(const difftc_session *s) { return s ? s->kernel_ms : 0.0; }
extern "C" const char *difftc_model_name(void) { return DT_MODEL_NAME; }
extern "C" int difftc_num_inputs(void) { return DT_NUM_INPUTS; }
extern "C" int difftc_num_outputs(void) { return DT_NUM_OUTPUTS; }
extern "C" int difftc_num_params(void) { return DT_NUM_PARAMS; }
extern "C" const char *difftc_input_name(int i) { return i >= 0 && i < DT_NUM_INPUTS ? DT_INPUTS[i].name : NULL; }
extern "C" const char *difftc_output_name(int i) { return i >= 0 && i < DT_NUM_OUTPUTS ? DT_OUTPUTS[i].name : NULL; }
extern "C" const char *difftc_param_name(int i) { return i >= 0 && i < DT_NUM_PARAMS ? DT_PARAMS[i].name : NULL; }
