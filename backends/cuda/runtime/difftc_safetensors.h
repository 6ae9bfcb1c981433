/*
 * difftc_safetensors.h: a strict, dependency-free safetensors reader and writer for the
 * standalone runner of CUDA artifacts. Header-only; C99, C++17 and nvcc (host code only).
 * POSIX I/O (open/read/write/fsync/rename).
 *
 * The format (https://github.com/huggingface/safetensors): an 8-byte little-endian header
 * length N, N bytes of UTF-8 JSON, then the raw little-endian tensor data. The JSON is an
 * object mapping each tensor name to {"dtype": "F32", "shape": [2, 3], "data_offsets":
 * [begin, end]} (offsets relative to the start of the data), plus an optional
 * "__metadata__" object of string -> string, which this reader checks and skips.
 *
 * The reader trusts nothing in the file (the same rules as runtime/safetensors.ts, a little
 * stricter): the header length is at most DT_MAX_HEADER_BYTES and inside the file; the
 * header is valid UTF-8 and RFC 8259 JSON (escapes including \uXXXX surrogate pairs; lone
 * surrogates, control characters, trailing commas and trailing garbage are refused; nesting
 * is bounded); only spaces, tabs and newlines may follow the object (the writer's padding);
 * each entry has a known dtype, a shape of at most DT_MAX_RANK non-negative integers, and
 * two data offsets, integers written as plain digits (no sign, fraction or exponent) no
 * larger than 2^53 - 1; begin <= end <= data size; end - begin == product(shape) * element
 * size; no two tensors share a byte; no name appears twice; no name contains U+0000.
 * Unknown fields inside an entry are ignored, as the reference implementation does. Gaps
 * between tensors are allowed. Every failure is a nonzero return and a message naming the
 * file, such as
 *     weights.safetensors: tensor "x" has data_offsets [0, 40] out of range (the data is 24 bytes)
 *
 *   dt_file f;
 *   char err[512];
 *   if (dt_read("weights.safetensors", &f, err, sizeof err)) { fprintf(stderr, "%s\n", err); exit(1); }
 *   const dt_tensor *t = dt_find(&f, "layer0.wq");
 *   if (t && t->dtype == DT_F32) memcpy(host, dt_data(&f, t), t->nbytes);
 *   dt_free(&f);
 *
 * dt_data points into the file's buffer: it is only 8-byte aligned if the header length and
 * the offsets are, so copy out (memcpy) rather than cast. Data is in file order, little-endian,
 * which is the host order on every CUDA host; dt_write likewise writes the host's bytes.
 */
#ifndef DIFFTC_SAFETENSORS_H
#define DIFFTC_SAFETENSORS_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define DT_MAX_RANK 8
/* The reference implementation's limit, so a corrupt length cannot make us parse 4 GB. */
#define DT_MAX_HEADER_BYTES 100000000ull
#define DT_MAX_JSON_DEPTH 64
/* Shape sizes and offsets above this are refused, as by the TypeScript reader. */
#define DT_MAX_INTEGER 9007199254740991ull

/* Return codes: 0 is success. */
#define DT_ERR_IO 1     /* the file cannot be opened, read or written */
#define DT_ERR_FORMAT 2 /* the file is not a valid safetensors file */
#define DT_ERR_NOMEM 3  /* out of memory */
#define DT_ERR_ARG 4    /* dt_write was given bad arguments */

enum { DT_F32, DT_F16, DT_BF16, DT_I32, DT_I8, DT_U8, DT_BOOL, DT_F64, DT_I64, DT_DTYPE_COUNT };

typedef struct {
  char *name;            /* UTF-8, NUL-terminated (names with U+0000 are refused) */
  int dtype;             /* DT_F32 ... DT_I64 */
  int rank;              /* 0 .. DT_MAX_RANK */
  int64_t shape[DT_MAX_RANK];
  size_t numel;          /* product of the shape (1 for rank 0) */
  size_t offset_bytes;   /* from the start of the data section */
  size_t nbytes;         /* numel * dt_dtype_size(dtype) */
} dt_tensor;

typedef struct {
  unsigned char *bytes;  /* the whole file */
  size_t size;           /* its length */
  size_t data_start;     /* 8 + header length: where the data section begins */
  int count;
  dt_tensor *tensors;    /* in header order */
  /* private */
  char *names_;
  const dt_tensor **by_name_;
} dt_file;

#if defined(__GNUC__) || defined(__clang__)
#define DT__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define DT__PRINTF(f, a)
#endif

/* Bytes per element, or 0 for an unknown dtype. */
static inline size_t dt_dtype_size(int dtype) {
  switch (dtype) {
    case DT_F32: case DT_I32: return 4;
    case DT_F16: case DT_BF16: return 2;
    case DT_I8: case DT_U8: case DT_BOOL: return 1;
    case DT_F64: case DT_I64: return 8;
    default: return 0;
  }
}

/* The file's name of a dtype ("F32"), or NULL. */
static inline const char *dt_dtype_name(int dtype) {
  switch (dtype) {
    case DT_F32: return "F32";
    case DT_F16: return "F16";
    case DT_BF16: return "BF16";
    case DT_I32: return "I32";
    case DT_I8: return "I8";
    case DT_U8: return "U8";
    case DT_BOOL: return "BOOL";
    case DT_F64: return "F64";
    case DT_I64: return "I64";
    default: return NULL;
  }
}

/* The dtype named by the n bytes at s, or -1. */
static inline int dt_dtype_parse(const char *s, size_t n) {
  int d;
  for (d = 0; d < DT_DTYPE_COUNT; d++) {
    const char *name = dt_dtype_name(d);
    if (strlen(name) == n && memcmp(name, s, n) == 0) return d;
  }
  return -1;
}

/* ---- errors ---- */

/* Writes "<label>: <message>" to err (when err and errlen allow) and returns code. */
static inline int dt__verr(char *err, size_t errlen, int code, const char *label, const char *fmt, va_list ap) {
  if (err && errlen > 0) {
    int n = snprintf(err, errlen, "%s: ", label ? label : "<buffer>");
    if (n >= 0 && (size_t)n < errlen) vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
  }
  return code;
}

static inline int dt__err(char *err, size_t errlen, int code, const char *label, const char *fmt, ...) DT__PRINTF(5, 6);
static inline int dt__err(char *err, size_t errlen, int code, const char *label, const char *fmt, ...) {
  va_list ap;
  int rc;
  va_start(ap, fmt);
  rc = dt__verr(err, errlen, code, label, fmt, ap);
  va_end(ap);
  return rc;
}

/* Writes s[0..n) into out (size cap >= 8) as a JSON string literal, as JSON.stringify would,
 * shortened with "..." past about 80 bytes. */
static inline void dt__quote(char *out, size_t cap, const char *s, size_t n) {
  size_t o = 0, i;
  const size_t limit = cap > 16 ? cap - 12 : 0;
  out[o++] = '"';
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (o >= limit) {
      /* do not cut a UTF-8 sequence in half */
      while (o > 1 && ((unsigned char)out[o - 1] & 0xC0) == 0x80) o--;
      if (o > 1 && (unsigned char)out[o - 1] >= 0xC0) o--;
      memcpy(out + o, "...", 3);
      o += 3;
      break;
    }
    if (c == '"' || c == '\\') { out[o++] = '\\'; out[o++] = (char)c; }
    else if (c == '\n') { out[o++] = '\\'; out[o++] = 'n'; }
    else if (c == '\t') { out[o++] = '\\'; out[o++] = 't'; }
    else if (c == '\r') { out[o++] = '\\'; out[o++] = 'r'; }
    else if (c < 0x20) o += (size_t)snprintf(out + o, 7, "\\u%04x", c);
    else out[o++] = (char)c;
  }
  out[o++] = '"';
  out[o] = '\0';
}

/* ---- UTF-8 and JSON ---- */

/* The length of the valid UTF-8 prefix of s[0..n) (== n when all of it is valid). */
static inline size_t dt__utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    size_t len, k;
    uint32_t cp;
    if (c < 0x80) { i++; continue; }
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1Fu; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0Fu; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07u; }
    else return i;
    if (n - i < len) return i;
    for (k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3Fu);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return i;
    i += len;
  }
  return n;
}

typedef struct {
  const unsigned char *s; /* the header */
  size_t n, i;
  const char *label;
  char *err;
  size_t errlen;
} dt__json;

static inline int dt__jerr(dt__json *j, const char *fmt, ...) DT__PRINTF(2, 3);
static inline int dt__jerr(dt__json *j, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  dt__verr(j->err, j->errlen, DT_ERR_FORMAT, j->label, fmt, ap);
  va_end(ap);
  return DT_ERR_FORMAT;
}

static inline int dt__syntax(dt__json *j, const char *what) {
  if (j->i >= j->n) return dt__jerr(j, "header is not valid JSON (%s, but the header ends after %zu bytes)", what, j->n);
  return dt__jerr(j, "header is not valid JSON (%s at byte %zu of the header)", what, j->i);
}

static inline void dt__ws(dt__json *j) {
  while (j->i < j->n) {
    unsigned char c = j->s[j->i];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    j->i++;
  }
}

static inline int dt__hex4(dt__json *j, uint32_t *v) {
  size_t k;
  *v = 0;
  if (j->n - j->i < 4) return -1;
  for (k = 0; k < 4; k++) {
    unsigned char c = j->s[j->i + k];
    uint32_t d;
    if (c >= '0' && c <= '9') d = (uint32_t)(c - '0');
    else if (c >= 'a' && c <= 'f') d = (uint32_t)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') d = (uint32_t)(c - 'A' + 10);
    else return -1;
    *v = (*v << 4) | d;
  }
  j->i += 4;
  return 0;
}

/*
 * Reads the string literal at j->i. When out is not NULL the decoded UTF-8 goes there (never
 * more bytes than the literal's own) with its length in *outlen, and *has_nul says whether it
 * holds U+0000. The header was checked for UTF-8 beforehand.
 */
static inline int dt__string(dt__json *j, char *out, size_t *outlen, int *has_nul) {
  size_t o = 0;
  if (has_nul) *has_nul = 0;
  if (j->i >= j->n || j->s[j->i] != '"') return dt__syntax(j, "expected a string");
  j->i++;
  for (;;) {
    unsigned char c;
    if (j->i >= j->n) return dt__syntax(j, "unterminated string");
    c = j->s[j->i];
    if (c == '"') { j->i++; break; }
    if (c < 0x20) return dt__syntax(j, "control character in a string");
    if (c != '\\') {
      if (out) out[o++] = (char)c;
      j->i++;
      continue;
    }
    j->i++;
    if (j->i >= j->n) return dt__syntax(j, "unterminated string");
    c = j->s[j->i++];
    switch (c) {
      case '"': case '\\': case '/': break;
      case 'b': c = '\b'; break;
      case 'f': c = '\f'; break;
      case 'n': c = '\n'; break;
      case 'r': c = '\r'; break;
      case 't': c = '\t'; break;
      case 'u': {
        uint32_t cp, lo;
        if (dt__hex4(j, &cp)) return dt__syntax(j, "expected four hex digits after \\u");
        if (cp >= 0xDC00 && cp <= 0xDFFF) return dt__syntax(j, "lone low surrogate escape");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (j->n - j->i < 2 || j->s[j->i] != '\\' || j->s[j->i + 1] != 'u') return dt__syntax(j, "lone high surrogate escape");
          j->i += 2;
          if (dt__hex4(j, &lo)) return dt__syntax(j, "expected four hex digits after \\u");
          if (lo < 0xDC00 || lo > 0xDFFF) return dt__syntax(j, "lone high surrogate escape");
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        if (cp == 0 && has_nul) *has_nul = 1;
        if (out) {
          if (cp < 0x80) out[o++] = (char)cp;
          else if (cp < 0x800) { out[o++] = (char)(0xC0 | (cp >> 6)); out[o++] = (char)(0x80 | (cp & 0x3F)); }
          else if (cp < 0x10000) {
            out[o++] = (char)(0xE0 | (cp >> 12));
            out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (cp & 0x3F));
          } else {
            out[o++] = (char)(0xF0 | (cp >> 18));
            out[o++] = (char)(0x80 | ((cp >> 12) & 0x3F));
            out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (cp & 0x3F));
          }
        }
        continue;
      }
      default:
        j->i--;
        return dt__syntax(j, "invalid escape in a string");
    }
    if (out) out[o++] = (char)c;
  }
  if (outlen) *outlen = o;
  return 0;
}

static inline int dt__digit(dt__json *j) { return j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9'; }

static inline int dt__number(dt__json *j) {
  if (j->i < j->n && j->s[j->i] == '-') j->i++;
  if (!dt__digit(j)) return dt__syntax(j, "expected a digit");
  if (j->s[j->i] == '0') j->i++;
  else while (dt__digit(j)) j->i++;
  if (j->i < j->n && j->s[j->i] == '.') {
    j->i++;
    if (!dt__digit(j)) return dt__syntax(j, "expected a digit after '.'");
    while (dt__digit(j)) j->i++;
  }
  if (j->i < j->n && (j->s[j->i] == 'e' || j->s[j->i] == 'E')) {
    j->i++;
    if (j->i < j->n && (j->s[j->i] == '+' || j->s[j->i] == '-')) j->i++;
    if (!dt__digit(j)) return dt__syntax(j, "expected a digit in the exponent");
    while (dt__digit(j)) j->i++;
  }
  return 0;
}

/* Skips (and checks) the JSON value at j->i; depth counts the enclosing arrays and objects. */
static inline int dt__value(dt__json *j, int depth) {
  unsigned char c;
  if (j->i >= j->n) return dt__syntax(j, "expected a value");
  c = j->s[j->i];
  if (c == '{' || c == '[') {
    const unsigned char close = c == '{' ? '}' : ']';
    if (depth >= DT_MAX_JSON_DEPTH) return dt__jerr(j, "header nests arrays and objects more than %d deep", DT_MAX_JSON_DEPTH);
    j->i++;
    dt__ws(j);
    if (j->i < j->n && j->s[j->i] == close) { j->i++; return 0; }
    for (;;) {
      int rc;
      if (c == '{') {
        if ((rc = dt__string(j, NULL, NULL, NULL))) return rc;
        dt__ws(j);
        if (j->i >= j->n || j->s[j->i] != ':') return dt__syntax(j, "expected ':'");
        j->i++;
        dt__ws(j);
      }
      if ((rc = dt__value(j, depth + 1))) return rc;
      dt__ws(j);
      if (j->i < j->n && j->s[j->i] == ',') {
        j->i++;
        dt__ws(j);
        continue;
      }
      if (j->i < j->n && j->s[j->i] == close) { j->i++; return 0; }
      return dt__syntax(j, c == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
    }
  }
  if (c == '"') return dt__string(j, NULL, NULL, NULL);
  if (c == '-' || (c >= '0' && c <= '9')) return dt__number(j);
  if (j->n - j->i >= 4 && memcmp(j->s + j->i, "true", 4) == 0) { j->i += 4; return 0; }
  if (j->n - j->i >= 5 && memcmp(j->s + j->i, "false", 5) == 0) { j->i += 5; return 0; }
  if (j->n - j->i >= 4 && memcmp(j->s + j->i, "null", 4) == 0) { j->i += 4; return 0; }
  return dt__syntax(j, "expected a value");
}

/* Reads a non-negative integer <= DT_MAX_INTEGER written as plain digits; 1 if the value at
 * j->i is anything else (j->i is then unspecified). */
static inline int dt__uint(dt__json *j, uint64_t *v) {
  uint64_t x = 0;
  size_t start = j->i;
  while (dt__digit(j)) {
    x = x * 10 + (uint64_t)(j->s[j->i] - '0');
    if (x > DT_MAX_INTEGER) return 1;
    j->i++;
  }
  if (j->i == start) return 1;
  if (j->s[start] == '0' && j->i - start > 1) return 1;
  if (j->i < j->n && (j->s[j->i] == '.' || j->s[j->i] == 'e' || j->s[j->i] == 'E')) return 1;
  *v = x;
  return 0;
}

/* Reads an array of integers (see dt__uint); stores the first cap of them and their count in
 * *count; 1 if the value is not such an array. */
static inline int dt__uints(dt__json *j, uint64_t *vals, size_t cap, size_t *count) {
  size_t k = 0;
  if (j->i >= j->n || j->s[j->i] != '[') return 1;
  j->i++;
  dt__ws(j);
  if (j->i < j->n && j->s[j->i] == ']') { j->i++; *count = 0; return 0; }
  for (;;) {
    uint64_t v;
    if (dt__uint(j, &v)) return 1;
    if (k < cap) vals[k] = v;
    k++;
    dt__ws(j);
    if (j->i < j->n && j->s[j->i] == ',') { j->i++; dt__ws(j); continue; }
    if (j->i < j->n && j->s[j->i] == ']') { j->i++; break; }
    return 1;
  }
  *count = k;
  return 0;
}

/* The JSON text of the (already checked) value at `at`, shortened, for messages. */
static inline void dt__raw(dt__json *j, size_t at, char *out, size_t cap) {
  dt__json k = *j;
  size_t n, o, i;
  k.i = at;
  k.err = NULL;
  k.errlen = 0;
  if (dt__value(&k, 0)) k.i = at;
  n = k.i - at;
  for (o = 0, i = 0; i < n && o + 4 < cap; i++) {
    unsigned char c = j->s[at + i];
    out[o++] = (char)(c < 0x20 ? ' ' : c);
  }
  if (i < n) {
    while (o > 0 && ((unsigned char)out[o - 1] & 0xC0) == 0x80) o--;
    if (o > 0 && (unsigned char)out[o - 1] >= 0xC0) o--;
    memcpy(out + o, "...", 3);
    o += 3;
  }
  out[o] = '\0';
}

/* ---- the reader ---- */

/* Frees what dt_read allocated and zeroes *f; safe on a zeroed or freed dt_file. */
static inline void dt_free(dt_file *f) {
  if (!f) return;
  free(f->bytes);
  free(f->tensors);
  free(f->names_);
  free((void *)f->by_name_);
  memset(f, 0, sizeof *f);
}

static inline int dt__by_name(const void *a, const void *b) {
  return strcmp((*(const dt_tensor *const *)a)->name, (*(const dt_tensor *const *)b)->name);
}

static inline int dt__by_offset(const void *a, const void *b) {
  const dt_tensor *x = *(const dt_tensor *const *)a, *y = *(const dt_tensor *const *)b;
  if (x->offset_bytes != y->offset_bytes) return x->offset_bytes < y->offset_bytes ? -1 : 1;
  if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
  return x < y ? -1 : x > y ? 1 : 0;
}

static inline void dt__format_shape(char *out, size_t cap, const dt_tensor *t) {
  size_t o = 0;
  int k;
  o += (size_t)snprintf(out, cap, "[");
  for (k = 0; k < t->rank && o < cap; k++) {
    o += (size_t)snprintf(out + o, cap - o, "%s%lld", k ? ", " : "", (long long)t->shape[k]);
  }
  if (o < cap) snprintf(out + o, cap - o, "]");
}

/* Parses one tensor entry, at j->i, whose name is t->name (printed as q). */
static inline int dt__entry(dt__json *j, dt_tensor *t, const char *q, char *scratch, size_t data_size) {
  static const char *const fields[3] = {"dtype", "shape", "data_offsets"};
  size_t at[3] = {0, 0, 0};
  int seen[3] = {0, 0, 0};
  char raw[96], shape_text[200];
  uint64_t dims[DT_MAX_RANK], offs[2], numel = 1, needed;
  size_t count, len, k, end;
  int rc, f, overflow = 0;

  if (j->s[j->i] != '{') return dt__jerr(j, "tensor %s is not a JSON object", q);
  j->i++;
  dt__ws(j);
  if (j->s[j->i] == '}') j->i++;
  else for (;;) {
    if ((rc = dt__string(j, scratch, &len, NULL))) return rc;
    dt__ws(j);
    j->i++; /* ':' */
    dt__ws(j);
    for (f = 0; f < 3; f++) {
      if (len == strlen(fields[f]) && memcmp(scratch, fields[f], len) == 0) {
        if (seen[f]) return dt__jerr(j, "tensor %s has more than one \"%s\" field", q, fields[f]);
        seen[f] = 1;
        at[f] = j->i;
      }
    }
    if ((rc = dt__value(j, 2))) return rc;
    dt__ws(j);
    if (j->s[j->i++] == '}') break;
    dt__ws(j);
  }
  end = j->i;
  for (f = 0; f < 3; f++) {
    if (!seen[f]) return dt__jerr(j, "tensor %s has no %s", q, fields[f]);
  }

  j->i = at[0];
  t->dtype = -1;
  if (j->s[j->i] == '"') {
    if ((rc = dt__string(j, scratch, &len, NULL))) return rc;
    t->dtype = dt_dtype_parse(scratch, len);
  }
  if (t->dtype < 0) {
    dt__raw(j, at[0], raw, sizeof raw);
    return dt__jerr(j, "tensor %s has unknown dtype %s (supported: F32, F16, BF16, I32, I8, U8, BOOL, F64, I64)", q, raw);
  }

  j->i = at[1];
  if (dt__uints(j, dims, DT_MAX_RANK, &count)) {
    dt__raw(j, at[1], raw, sizeof raw);
    return dt__jerr(j, "tensor %s has shape %s; sizes must be non-negative integers below 2^53", q, raw);
  }
  if (count > DT_MAX_RANK) {
    dt__raw(j, at[1], raw, sizeof raw);
    return dt__jerr(j, "tensor %s has shape %s of rank %zu; at most %d dimensions are supported", q, raw, count, DT_MAX_RANK);
  }
  t->rank = (int)count;
  for (k = 0; k < count; k++) t->shape[k] = (int64_t)dims[k];
  for (k = 0; k < count; k++) if (dims[k] == 0) numel = 0;
  for (k = 0; k < count && numel != 0; k++) {
    if (numel > UINT64_MAX / dims[k]) { overflow = 1; break; }
    numel *= dims[k];
  }

  j->i = at[2];
  if (dt__uints(j, offs, 2, &count) || count != 2) {
    dt__raw(j, at[2], raw, sizeof raw);
    return dt__jerr(j, "tensor %s has data_offsets %s; expected two non-negative integers below 2^53", q, raw);
  }
  if (offs[1] < offs[0]) {
    return dt__jerr(j, "tensor %s has reversed data_offsets [%llu, %llu]", q, (unsigned long long)offs[0], (unsigned long long)offs[1]);
  }
  if (offs[1] > data_size) {
    return dt__jerr(j, "tensor %s has data_offsets [%llu, %llu] out of range (the data is %zu bytes)", q,
                    (unsigned long long)offs[0], (unsigned long long)offs[1], data_size);
  }
  dt__format_shape(shape_text, sizeof shape_text, t);
  if (overflow || numel > UINT64_MAX / dt_dtype_size(t->dtype)) {
    return dt__jerr(j, "tensor %s has %llu bytes but %s%s needs more than 2^64", q,
                    (unsigned long long)(offs[1] - offs[0]), dt_dtype_name(t->dtype), shape_text);
  }
  needed = numel * dt_dtype_size(t->dtype);
  if (offs[1] - offs[0] != needed) {
    return dt__jerr(j, "tensor %s has %llu bytes but %s%s needs %llu", q, (unsigned long long)(offs[1] - offs[0]),
                    dt_dtype_name(t->dtype), shape_text, (unsigned long long)needed);
  }
  t->numel = (size_t)numel; /* <= needed <= data_size */
  t->offset_bytes = (size_t)offs[0];
  t->nbytes = (size_t)needed;
  j->i = end;
  return 0;
}

/* Parses the header of f->bytes into f (on failure the caller frees f). */
static inline int dt__parse(dt_file *f, const char *label, char *err, size_t errlen) {
  dt__json j;
  uint64_t header_len = 0;
  size_t data_size, names_used = 0, cap = 0, valid, len, meta_at = 0;
  char q[128], q2[128], *scratch;
  int k, rc, has_nul, seen_meta = 0;
  const dt_tensor **by_offset;

  if (f->size < 8) {
    return dt__err(err, errlen, DT_ERR_FORMAT, label, "file is %zu bytes, shorter than the 8-byte header length", f->size);
  }
  for (k = 7; k >= 0; k--) header_len = (header_len << 8) | f->bytes[k];
  if (header_len > DT_MAX_HEADER_BYTES) {
    return dt__err(err, errlen, DT_ERR_FORMAT, label, "header length %llu is over the %llu-byte limit",
                   (unsigned long long)header_len, DT_MAX_HEADER_BYTES);
  }
  if (header_len > f->size - 8) {
    return dt__err(err, errlen, DT_ERR_FORMAT, label, "header length %llu runs past the end of the file (%zu bytes)",
                   (unsigned long long)header_len, f->size);
  }
  f->data_start = 8 + (size_t)header_len;
  data_size = f->size - f->data_start;

  j.s = f->bytes + 8;
  j.n = (size_t)header_len;
  j.i = 0;
  j.label = label;
  j.err = err;
  j.errlen = errlen;
  valid = dt__utf8_valid(j.s, j.n);
  if (valid != j.n) {
    return dt__jerr(&j, "header is not valid UTF-8 (byte 0x%02x at byte %zu of the header)", j.s[valid], valid);
  }
  /* First pass: the whole header is one JSON value, then only whitespace. */
  dt__ws(&j);
  if ((rc = dt__value(&j, 0))) return rc;
  dt__ws(&j);
  if (j.i != j.n) return dt__syntax(&j, "unexpected text after the JSON value");
  j.i = 0;
  dt__ws(&j);
  if (j.s[j.i] != '{') return dt__jerr(&j, "header is not a JSON object");

  /* Names: decoded strings are never longer than their literals, so j.n bytes suffice. */
  f->names_ = (char *)malloc(j.n + 1);
  if (!f->names_) return dt__err(err, errlen, DT_ERR_NOMEM, label, "out of memory reading the header");

  j.i++;
  dt__ws(&j);
  if (j.s[j.i] == '}') j.i++;
  else for (;;) {
    char *name = f->names_ + names_used;
    dt_tensor *t;
    if ((rc = dt__string(&j, name, &len, &has_nul))) return rc;
    dt__ws(&j);
    j.i++; /* ':' */
    dt__ws(&j);
    if (len == 12 && !has_nul && memcmp(name, "__metadata__", 12) == 0) {
      seen_meta++;
      meta_at = j.i;
    } else {
      if (has_nul) {
        dt__quote(q, sizeof q, name, len);
        return dt__jerr(&j, "tensor name %s contains U+0000", q);
      }
      name[len] = '\0';
      names_used += len + 1;
      if (f->count == (int)cap) {
        size_t ncap = cap ? cap * 2 : 16;
        dt_tensor *grown = (dt_tensor *)realloc(f->tensors, ncap * sizeof *grown);
        if (!grown) return dt__err(err, errlen, DT_ERR_NOMEM, label, "out of memory reading the header");
        f->tensors = grown;
        cap = ncap;
      }
      t = &f->tensors[f->count++];
      memset(t, 0, sizeof *t);
      t->name = name;       /* the names buffer never moves */
      t->offset_bytes = j.i; /* where the entry's value starts, until it is parsed below */
    }
    if ((rc = dt__value(&j, 1))) return rc;
    dt__ws(&j);
    if (j.s[j.i++] == '}') break;
    dt__ws(&j);
  }

  /* Names first: no name twice (the sorted index also serves dt_find). */
  if (seen_meta > 1) return dt__jerr(&j, "__metadata__ appears more than once in the header");
  f->by_name_ = (const dt_tensor **)malloc(((size_t)f->count + 1) * sizeof *f->by_name_);
  if (!f->by_name_) return dt__err(err, errlen, DT_ERR_NOMEM, label, "out of memory reading the header");
  for (k = 0; k < f->count; k++) f->by_name_[k] = &f->tensors[k];
  if (f->count > 1) qsort((void *)f->by_name_, (size_t)f->count, sizeof *f->by_name_, dt__by_name);
  for (k = 1; k < f->count; k++) {
    if (strcmp(f->by_name_[k - 1]->name, f->by_name_[k]->name) == 0) {
      dt__quote(q, sizeof q, f->by_name_[k]->name, strlen(f->by_name_[k]->name));
      return dt__jerr(&j, "tensor %s appears more than once in the header", q);
    }
  }

  /* Then __metadata__, an object of strings (the bytes after the names serve as scratch
   * space for keys and dtypes: decoded strings are never longer than their literals). */
  scratch = f->names_ + names_used;
  if (seen_meta) {
    j.i = meta_at;
    if (j.s[j.i] != '{') return dt__jerr(&j, "__metadata__ is not a JSON object");
    j.i++;
    dt__ws(&j);
    if (j.s[j.i] == '}') j.i++;
    else for (;;) {
      if ((rc = dt__string(&j, scratch, &len, NULL))) return rc;
      dt__ws(&j);
      j.i++; /* ':' */
      dt__ws(&j);
      if (j.s[j.i] != '"') {
        dt__quote(q, sizeof q, scratch, len);
        return dt__jerr(&j, "__metadata__ value %s is not a string", q);
      }
      if ((rc = dt__string(&j, NULL, NULL, NULL))) return rc;
      dt__ws(&j);
      if (j.s[j.i++] == '}') break;
      dt__ws(&j);
    }
  }

  /* Then each entry, in header order. */
  for (k = 0; k < f->count; k++) {
    dt_tensor *t = &f->tensors[k];
    dt__quote(q, sizeof q, t->name, strlen(t->name));
    j.i = t->offset_bytes;
    if ((rc = dt__entry(&j, t, q, scratch, data_size))) return rc;
  }

  /* No two tensors share a byte: sorted by offset, each must end before the next begins. */
  by_offset = (const dt_tensor **)malloc(((size_t)f->count + 1) * sizeof *by_offset);
  if (!by_offset) return dt__err(err, errlen, DT_ERR_NOMEM, label, "out of memory reading the header");
  len = 0;
  for (k = 0; k < f->count; k++) if (f->tensors[k].nbytes > 0) by_offset[len++] = &f->tensors[k];
  if (len > 1) qsort((void *)by_offset, len, sizeof *by_offset, dt__by_offset);
  rc = 0;
  for (valid = 1; valid < len; valid++) {
    const dt_tensor *prev = by_offset[valid - 1], *cur = by_offset[valid];
    if (cur->offset_bytes < prev->offset_bytes + prev->nbytes) {
      dt__quote(q, sizeof q, cur->name, strlen(cur->name));
      dt__quote(q2, sizeof q2, prev->name, strlen(prev->name));
      rc = dt__jerr(&j, "tensor %s (bytes %zu..%zu) overlaps tensor %s (bytes %zu..%zu)", q, cur->offset_bytes,
                    cur->offset_bytes + cur->nbytes, q2, prev->offset_bytes, prev->offset_bytes + prev->nbytes);
      break;
    }
  }
  free((void *)by_offset);
  return rc;
}

/*
 * Reads and checks the safetensors file at path into *out. Returns 0, or DT_ERR_IO,
 * DT_ERR_FORMAT or DT_ERR_NOMEM with a message naming the file in err (when err is not
 * NULL); *out is then zeroed. Free a successful result with dt_free.
 */
static inline int dt_read(const char *path, dt_file *out, char *err, size_t errlen) {
  int fd, rc;
  struct stat st;
  size_t cap = 1 << 16, len = 0;
  unsigned char *buf;

  memset(out, 0, sizeof *out);
  if (err && errlen) err[0] = '\0';
  fd = open(path, O_RDONLY);
  if (fd < 0) return dt__err(err, errlen, DT_ERR_IO, path, "cannot read (%s)", strerror(errno));
  if (fstat(fd, &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      close(fd);
      return dt__err(err, errlen, DT_ERR_IO, path, "cannot read (it is a directory)");
    }
    if (S_ISREG(st.st_mode) && st.st_size > 0 && (uint64_t)st.st_size < (uint64_t)SIZE_MAX) cap = (size_t)st.st_size + 1;
  }
  buf = (unsigned char *)malloc(cap);
  if (!buf) {
    close(fd);
    return dt__err(err, errlen, DT_ERR_NOMEM, path, "out of memory reading %zu bytes", cap);
  }
  for (;;) {
    ssize_t r;
    size_t want;
    if (len == cap) {
      unsigned char *grown = cap <= SIZE_MAX / 2 ? (unsigned char *)realloc(buf, cap * 2) : NULL;
      if (!grown) {
        free(buf);
        close(fd);
        return dt__err(err, errlen, DT_ERR_NOMEM, path, "out of memory reading the file");
      }
      buf = grown;
      cap *= 2;
    }
    want = cap - len < ((size_t)1 << 30) ? cap - len : ((size_t)1 << 30);
    r = read(fd, buf + len, want);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      free(buf);
      close(fd);
      return dt__err(err, errlen, DT_ERR_IO, path, "cannot read (%s)", strerror(e));
    }
    if (r == 0) break;
    len += (size_t)r;
  }
  close(fd);
  out->bytes = buf;
  out->size = len;
  rc = dt__parse(out, path, err, errlen);
  if (rc) dt_free(out);
  return rc;
}

/* The tensor with this name, or NULL. */
static inline const dt_tensor *dt_find(const dt_file *f, const char *name) {
  size_t lo = 0, hi = f->count > 0 ? (size_t)f->count : 0;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(f->by_name_[mid]->name, name);
    if (c == 0) return f->by_name_[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

/* The tensor's bytes inside the file buffer (t->nbytes of them; possibly unaligned). */
static inline const void *dt_data(const dt_file *f, const dt_tensor *t) {
  return f->bytes + f->data_start + t->offset_bytes;
}

/* ---- the writer ---- */

typedef struct {
  char *p;
  size_t len, cap;
  int oom;
} dt__buf;

static inline void dt__put(dt__buf *b, const char *s, size_t n) {
  if (b->oom || n == 0) return;
  if (n > b->cap - b->len) {
    size_t ncap = b->cap ? b->cap : 256;
    char *grown;
    while (ncap - b->len < n) {
      if (ncap > SIZE_MAX / 2) { b->oom = 1; return; }
      ncap *= 2;
    }
    grown = (char *)realloc(b->p, ncap);
    if (!grown) { b->oom = 1; return; }
    b->p = grown;
    b->cap = ncap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

static inline void dt__puts(dt__buf *b, const char *s) { dt__put(b, s, strlen(s)); }

static inline void dt__putu(dt__buf *b, uint64_t v) {
  char tmp[24];
  int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
  dt__put(b, tmp, (size_t)n);
}

/* Appends s as a JSON string literal, escaping as JSON.stringify does. */
static inline void dt__put_json_string(dt__buf *b, const char *s) {
  dt__put(b, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    char tmp[8];
    if (c == '"') dt__put(b, "\\\"", 2);
    else if (c == '\\') dt__put(b, "\\\\", 2);
    else if (c == '\b') dt__put(b, "\\b", 2);
    else if (c == '\f') dt__put(b, "\\f", 2);
    else if (c == '\n') dt__put(b, "\\n", 2);
    else if (c == '\r') dt__put(b, "\\r", 2);
    else if (c == '\t') dt__put(b, "\\t", 2);
    else if (c < 0x20) {
      snprintf(tmp, sizeof tmp, "\\u%04x", c);
      dt__put(b, tmp, 6);
    } else dt__put(b, (const char *)&c, 1);
  }
  dt__put(b, "\"", 1);
}

static inline int dt__write_all(int fd, const void *p, size_t n) {
  const unsigned char *s = (const unsigned char *)p;
  while (n > 0) {
    ssize_t w = write(fd, s, n < ((size_t)1 << 30) ? n : ((size_t)1 << 30));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    s += w;
    n -= (size_t)w;
  }
  return 0;
}

static inline int dt__cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Writes `count` tensors to a safetensors file at path: tensor i is named names[i] (UTF-8,
 * not "__metadata__", no two alike), has dtype dtypes[i], rank ranks[i] (0 .. DT_MAX_RANK)
 * and shape shapes[i][0 .. rank) (sizes >= 0; shapes[i] may be NULL for rank 0), and its
 * data[i] holds product(shape) * dt_dtype_size(dtype) bytes, little-endian (may be NULL when
 * that is 0). Tensors are laid out in the order given, the header padded with spaces to a
 * multiple of 8 bytes. The file is written to "<path>.tmp-<pid>", synced, then renamed over
 * path, so readers see the old file or the whole new one. Returns 0, or DT_ERR_ARG, DT_ERR_IO
 * or DT_ERR_NOMEM with a message in err.
 */
static inline int dt_write(const char *path, int count, const char *const *names, const int *dtypes, const int *ranks,
                           const int64_t *const *shapes, const void *const *data, char *err, size_t errlen) {
  dt__buf h = {NULL, 0, 0, 0};
  uint64_t offset = 0, total;
  size_t *sizes = NULL;
  const char **sorted = NULL;
  char *tmp = NULL, q[128];
  unsigned char len8[8];
  int i, k, fd = -1, rc = 0, e;

  if (err && errlen) err[0] = '\0';
  if (count < 0 || (count > 0 && (!names || !dtypes || !ranks || !shapes || !data))) {
    return dt__err(err, errlen, DT_ERR_ARG, path, "cannot write (a negative count or a NULL array)");
  }
  sizes = (size_t *)malloc(((size_t)count + 1) * sizeof *sizes);
  sorted = (const char **)malloc(((size_t)count + 1) * sizeof *sorted);
  if (!sizes || !sorted) {
    rc = dt__err(err, errlen, DT_ERR_NOMEM, path, "cannot write (out of memory)");
    goto done;
  }
  dt__put(&h, "{", 1);
  for (i = 0; i < count && rc == 0; i++) {
    const char *name = names[i];
    uint64_t numel = 1, nbytes;
    size_t n = name ? strlen(name) : 0;
    if (!name) { rc = dt__err(err, errlen, DT_ERR_ARG, path, "cannot write tensor %d: its name is NULL", i); break; }
    dt__quote(q, sizeof q, name, n);
    if (dt__utf8_valid((const unsigned char *)name, n) != n) {
      rc = dt__err(err, errlen, DT_ERR_ARG, path, "cannot write tensor %s: its name is not valid UTF-8", q);
      break;
    }
    if (strcmp(name, "__metadata__") == 0) {
      rc = dt__err(err, errlen, DT_ERR_ARG, path, "cannot write a tensor named \"__metadata__\"");
      break;
    }
    if (dt_dtype_size(dtypes[i]) == 0) {
      rc = dt__err(err, errlen, DT_ERR_ARG, path, "cannot write tensor %s: unknown dtype %d", q, dtypes[i]);
      break;
    }
    if (ranks[i] < 0 || ranks[i] > DT_MAX_RANK || (ranks[i] > 0 && !shapes[i])) {
      rc = dt__err(err, errlen, DT_ERR_ARG, path, "cannot write tensor %s: rank %d is not 0 .. %d with a shape", q, ranks[i], DT_MAX_RANK);
      break;
    }
    for (k = 0; k < ranks[i]; k++) {
      if (shapes[i][k] < 0 || (uint64_t)shapes[i][k] > DT_MAX_INTEGER) {
        rc = dt__err(err, errlen, DT_ERR_ARG, path, "cannot write tensor %s: size %lld is out of range", q, (long long)shapes[i][k]);
        break;
      }
    }
    if (rc) break;
    for (k = 0; k < ranks[i]; k++) if (shapes[i][k] == 0) numel = 0;
    for (k = 0; k < ranks[i] && numel != 0; k++) {
      if (numel > DT_MAX_INTEGER / (uint64_t)shapes[i][k]) { numel = DT_MAX_INTEGER + 1; break; }
      numel *= (uint64_t)shapes[i][k];
    }
    nbytes = numel <= DT_MAX_INTEGER ? numel * dt_dtype_size(dtypes[i]) : numel;
    if (nbytes > DT_MAX_INTEGER - offset || nbytes > (uint64_t)SIZE_MAX) {
      rc = dt__err(err, errlen, DT_ERR_ARG, path, "cannot write tensor %s: the data would pass 2^53 bytes", q);
      break;
    }
    if (nbytes > 0 && !data[i]) {
      rc = dt__err(err, errlen, DT_ERR_ARG, path, "cannot write tensor %s: its data is NULL", q);
      break;
    }
    sizes[i] = (size_t)nbytes;
    sorted[i] = name;
    if (i > 0) dt__put(&h, ",", 1);
    dt__put_json_string(&h, name);
    dt__puts(&h, ":{\"dtype\":\"");
    dt__puts(&h, dt_dtype_name(dtypes[i]));
    dt__puts(&h, "\",\"shape\":[");
    for (k = 0; k < ranks[i]; k++) {
      if (k) dt__put(&h, ",", 1);
      dt__putu(&h, (uint64_t)shapes[i][k]);
    }
    dt__puts(&h, "],\"data_offsets\":[");
    dt__putu(&h, offset);
    dt__put(&h, ",", 1);
    dt__putu(&h, offset + nbytes);
    dt__puts(&h, "]}");
    offset += nbytes;
  }
  if (rc) goto done;
  if (count > 1) qsort((void *)sorted, (size_t)count, sizeof *sorted, dt__cmp_str);
  for (i = 1; i < count; i++) {
    if (strcmp(sorted[i - 1], sorted[i]) == 0) {
      dt__quote(q, sizeof q, sorted[i], strlen(sorted[i]));
      rc = dt__err(err, errlen, DT_ERR_ARG, path, "cannot write tensor %s twice", q);
      goto done;
    }
  }
  dt__put(&h, "}", 1);
  while (h.len % 8 != 0) dt__put(&h, " ", 1);
  if (h.oom) {
    rc = dt__err(err, errlen, DT_ERR_NOMEM, path, "cannot write (out of memory)");
    goto done;
  }
  total = h.len;
  for (k = 0; k < 8; k++) len8[k] = (unsigned char)(total >> (8 * k));

  tmp = (char *)malloc(strlen(path) + 32);
  if (!tmp) {
    rc = dt__err(err, errlen, DT_ERR_NOMEM, path, "cannot write (out of memory)");
    goto done;
  }
  sprintf(tmp, "%s.tmp-%ld", path, (long)getpid());
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
  if (fd < 0) {
    rc = dt__err(err, errlen, DT_ERR_IO, path, "cannot write (%s: %s)", tmp, strerror(errno));
    goto done;
  }
  e = dt__write_all(fd, len8, 8) || dt__write_all(fd, h.p, h.len);
  for (i = 0; i < count && !e; i++) e = sizes[i] > 0 && dt__write_all(fd, data[i], sizes[i]);
  if (!e && fsync(fd) != 0 && errno != EINVAL) e = 1;
  if (e) {
    rc = dt__err(err, errlen, DT_ERR_IO, path, "cannot write (%s: %s)", tmp, strerror(errno));
    close(fd);
    unlink(tmp);
    goto done;
  }
  if (close(fd) != 0) {
    rc = dt__err(err, errlen, DT_ERR_IO, path, "cannot write (%s: %s)", tmp, strerror(errno));
    unlink(tmp);
    goto done;
  }
  if (rename(tmp, path) != 0) {
    rc = dt__err(err, errlen, DT_ERR_IO, path, "cannot write (renaming %s: %s)", tmp, strerror(errno));
    unlink(tmp);
  }
done:
  free(h.p);
  free(sizes);
  free((void *)sorted);
  free(tmp);
  return rc;
}

#endif /* DIFFTC_SAFETENSORS_H */
