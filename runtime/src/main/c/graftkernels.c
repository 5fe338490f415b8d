/*
 * graftkernels: CPU kernels for Graft's fused training-graph ops (domain dev.graft, version 1), loaded by
 * the runtime into ONNX Runtime as a custom-op library (dev.graft.runtime.session.FusedKernels).
 * Every op also has an ONNX function body of standard ops in the graphs that use it
 * (dev.graft.compiler.ir.FusedOps), which ONNX Runtime runs wherever this library is not
 * registered; the kernels here compute the same values in one pass over their tensors.
 *
 *   LayerNorm(x, scale, bias) -> (y, mean, inv_std), attribute epsilon
 *                                                  rows of the last axis: y = (x − mean)·inv_std·scale + bias
 *   GeluGrad(dy, x) -> dx                          dx = dy·(Φ(x) + x·φ(x))
 *   SoftmaxGrad(dy, y) -> dx                       rows of the last axis: dx = y·(dy − Σ dy·y)
 *   LayerNormGrad(dy, x, scale, mean, inv_std) -> dx
 *       rows of the last axis, ĝ = dy·scale, c = x − mean:
 *       dx = inv_std·(ĝ − mean(ĝ) − c·inv_std²·mean(ĝ·c))
 *
 * All float32. Inputs of shapes the graphs never produce (element counts that do not fit) give a
 * NaN output, which the training step reports as a non-finite step rather than a wrong value.
 *
 * Built by build.sh for Linux x86-64 (one binary, its loops cloned for AVX-512, AVX2 and baseline
 * x86-64 and picked at load). No ONNX Runtime header is needed: the few C API entries used are
 * addressed by their slot in the frozen version-1 part of OrtApi, and OrtCustomOp is declared as
 * of API version 8, which later runtimes keep accepting.
 */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- ONNX Runtime's C API (the part used) */

typedef struct OrtStatus OrtStatus;
typedef struct OrtValue OrtValue;
typedef struct OrtSessionOptions OrtSessionOptions;
typedef struct OrtCustomOpDomain OrtCustomOpDomain;
typedef struct OrtKernelInfo OrtKernelInfo;
typedef struct OrtKernelContext OrtKernelContext;
typedef struct OrtTensorTypeAndShapeInfo OrtTensorTypeAndShapeInfo;
typedef void OrtApi;
typedef struct OrtApiBase {
  const OrtApi *(*GetApi)(uint32_t version);
  const char *(*GetVersionString)(void);
} OrtApiBase;

typedef struct OrtCustomOp {
  uint32_t version;
  void *(*CreateKernel)(const struct OrtCustomOp *op, const OrtApi *api, const OrtKernelInfo *info);
  const char *(*GetName)(const struct OrtCustomOp *op);
  const char *(*GetExecutionProviderType)(const struct OrtCustomOp *op);
  int (*GetInputType)(const struct OrtCustomOp *op, size_t index);
  size_t (*GetInputTypeCount)(const struct OrtCustomOp *op);
  int (*GetOutputType)(const struct OrtCustomOp *op, size_t index);
  size_t (*GetOutputTypeCount)(const struct OrtCustomOp *op);
  void (*KernelCompute)(void *kernel, OrtKernelContext *context);
  void (*KernelDestroy)(void *kernel);
  int (*GetInputCharacteristic)(const struct OrtCustomOp *op, size_t index);
  int (*GetOutputCharacteristic)(const struct OrtCustomOp *op, size_t index);
} OrtCustomOp;

enum {
  API_VERSION = 8,
  ELEMENT_FLOAT = 1,
  SLOT_CREATE_CUSTOM_OP_DOMAIN = 26,
  SLOT_CUSTOM_OP_DOMAIN_ADD = 27,
  SLOT_ADD_CUSTOM_OP_DOMAIN = 28,
  SLOT_GET_TENSOR_MUTABLE_DATA = 51,
  SLOT_GET_DIMENSIONS_COUNT = 61,
  SLOT_GET_DIMENSIONS = 62,
  SLOT_GET_TENSOR_SHAPE_ELEMENT_COUNT = 64,
  SLOT_GET_TENSOR_TYPE_AND_SHAPE = 65,
  SLOT_KERNEL_INFO_GET_ATTRIBUTE_FLOAT = 85,
  SLOT_KERNEL_CONTEXT_GET_INPUT = 90,
  SLOT_KERNEL_CONTEXT_GET_OUTPUT = 91,
  SLOT_RELEASE_STATUS = 93,
  SLOT_RELEASE_TENSOR_TYPE_AND_SHAPE_INFO = 99,
};

#define SLOT(i) (((void *const *) ort)[i])
typedef OrtStatus *(*CreateCustomOpDomainFn)(const char *, OrtCustomOpDomain **);
typedef OrtStatus *(*CustomOpDomainAddFn)(OrtCustomOpDomain *, const OrtCustomOp *);
typedef OrtStatus *(*AddCustomOpDomainFn)(OrtSessionOptions *, OrtCustomOpDomain *);
typedef OrtStatus *(*GetTensorMutableDataFn)(OrtValue *, void **);
typedef OrtStatus *(*GetDimensionsCountFn)(const OrtTensorTypeAndShapeInfo *, size_t *);
typedef OrtStatus *(*GetDimensionsFn)(const OrtTensorTypeAndShapeInfo *, int64_t *, size_t);
typedef OrtStatus *(*GetTensorShapeElementCountFn)(const OrtTensorTypeAndShapeInfo *, size_t *);
typedef OrtStatus *(*GetTensorTypeAndShapeFn)(const OrtValue *, OrtTensorTypeAndShapeInfo **);
typedef OrtStatus *(*KernelInfoGetAttributeFloatFn)(const OrtKernelInfo *, const char *, float *);
typedef OrtStatus *(*KernelContextGetInputFn)(const OrtKernelContext *, size_t, const OrtValue **);
typedef OrtStatus *(*KernelContextGetOutputFn)(OrtKernelContext *, size_t, const int64_t *, size_t, OrtValue **);
typedef void (*ReleaseStatusFn)(OrtStatus *);
typedef void (*ReleaseTensorTypeAndShapeInfoFn)(OrtTensorTypeAndShapeInfo *);

static const OrtApi *ort;

#define MAX_RANK 64

/* The hot loops, compiled for AVX-512, AVX2 and baseline x86-64, the variant picked at load;
 * -DGRAFT_SINGLE_TARGET builds one variant for the compiler's -march (to test each). */
#ifdef GRAFT_SINGLE_TARGET
#define CLONED
#else
#define CLONED __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif

/* A kernel's view of one tensor: data, element count, shape. */
typedef struct {
  float *data;
  size_t count;
  size_t rank;
  int64_t dims[MAX_RANK];
} Tensor;

/* Reads input `index`; returns 0 when ONNX Runtime refuses or the rank is beyond MAX_RANK. */
static int input(OrtKernelContext *context, size_t index, Tensor *t) {
  const OrtValue *v = NULL;
  OrtTensorTypeAndShapeInfo *info = NULL;
  OrtStatus *st = ((KernelContextGetInputFn) SLOT(SLOT_KERNEL_CONTEXT_GET_INPUT))(context, index, &v);
  if (!st) st = ((GetTensorTypeAndShapeFn) SLOT(SLOT_GET_TENSOR_TYPE_AND_SHAPE))(v, &info);
  if (!st) st = ((GetTensorShapeElementCountFn) SLOT(SLOT_GET_TENSOR_SHAPE_ELEMENT_COUNT))(info, &t->count);
  if (!st) st = ((GetDimensionsCountFn) SLOT(SLOT_GET_DIMENSIONS_COUNT))(info, &t->rank);
  int ok = !st && t->rank <= MAX_RANK;
  if (ok) st = ((GetDimensionsFn) SLOT(SLOT_GET_DIMENSIONS))(info, t->dims, t->rank);
  if (!st && ok) st = ((GetTensorMutableDataFn) SLOT(SLOT_GET_TENSOR_MUTABLE_DATA))((OrtValue *) v, (void **) &t->data);
  if (info) ((ReleaseTensorTypeAndShapeInfoFn) SLOT(SLOT_RELEASE_TENSOR_TYPE_AND_SHAPE_INFO))(info);
  if (st) {
    ((ReleaseStatusFn) SLOT(SLOT_RELEASE_STATUS))(st);
    return 0;
  }
  return ok;
}

/* Output `index` with the shape of `like`, its last dimension `last` when last >= 0; returns its
 * data, or NULL when ONNX Runtime refuses. */
static float *output_shaped(OrtKernelContext *context, size_t index, const Tensor *like, int64_t last) {
  int64_t dims[MAX_RANK];
  memcpy(dims, like->dims, like->rank * sizeof dims[0]);
  if (last >= 0 && like->rank > 0) dims[like->rank - 1] = last;
  OrtValue *v = NULL;
  float *data = NULL;
  OrtStatus *st = ((KernelContextGetOutputFn) SLOT(SLOT_KERNEL_CONTEXT_GET_OUTPUT))(context, index, dims, like->rank, &v);
  if (!st) st = ((GetTensorMutableDataFn) SLOT(SLOT_GET_TENSOR_MUTABLE_DATA))(v, (void **) &data);
  if (st) {
    ((ReleaseStatusFn) SLOT(SLOT_RELEASE_STATUS))(st);
    return NULL;
  }
  return data;
}

static float *output_like(OrtKernelContext *context, const Tensor *like) {
  return output_shaped(context, 0, like, -1);
}

/* The length of the last axis (1 for a scalar): the rows' width of the row-wise kernels. */
static size_t last_dim(const Tensor *t) {
  return t->rank > 0 ? (size_t) t->dims[t->rank - 1] : 1;
}

static void fill_nan(float *out, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = __builtin_nanf("");
}

/* ---------------------------------------------------------------- threads */

#define MAX_THREADS 8

typedef void (*RangeFn)(const void *args, size_t begin, size_t end);

typedef struct {
  RangeFn fn;
  const void *args;
  size_t begin;
  size_t end;
} Part;

static void *run_part(void *arg) {
  Part *p = (Part *) arg;
  p->fn(p->args, p->begin, p->end);
  return NULL;
}

/* Runs fn over [0, n) split over up to one thread per online CPU (at most MAX_THREADS, each at
 * least `grain` items); the calling thread takes the first part. */
static void parallel_for(RangeFn fn, const void *args, size_t n, size_t grain) {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  size_t threads = n / (grain ? grain : 1);
  size_t limit = cpus > 0 ? (size_t) cpus : 1;
  if (threads > limit) threads = limit;
  if (threads > MAX_THREADS) threads = MAX_THREADS;
  if (threads <= 1) {
    fn(args, 0, n);
    return;
  }
  Part parts[MAX_THREADS];
  pthread_t ids[MAX_THREADS];
  int started[MAX_THREADS] = {0};
  size_t step = (n + threads - 1) / threads;
  for (size_t t = 1; t < threads; t++) {
    size_t begin = t * step < n ? t * step : n;
    size_t end = begin + step < n ? begin + step : n;
    parts[t] = (Part) {fn, args, begin, end};
    started[t] = pthread_create(&ids[t], NULL, run_part, &parts[t]) == 0;
    if (!started[t]) fn(args, begin, end);
  }
  fn(args, 0, step < n ? step : n);
  for (size_t t = 1; t < threads; t++) {
    if (started[t]) pthread_join(ids[t], NULL);
  }
}

#define ELEMENT_GRAIN (1u << 16)

/* ---------------------------------------------------------------- LayerNorm */

typedef struct {
  float epsilon;
} LayerNormKernel;

typedef struct {
  const float *x;
  const float *scale;
  const float *bias;
  float *y;
  float *mean;
  float *inv_std;
  size_t width;
  float epsilon;
} LayerNormForwardArgs;

/* Two passes over each row (it stays in L1): the mean, then the variance of x − mean, both in
 * float64, and x − mean in float64 before the float32 scale and bias: a row whose mean is large
 * against its spread keeps its digits (float32's E[x²] − mean² would lose them). */
CLONED
static void layer_norm_rows(const void *args, size_t begin, size_t end) {
  const LayerNormForwardArgs *a = (const LayerNormForwardArgs *) args;
  size_t w = a->width;
  const float *restrict scale = a->scale;
  const float *restrict bias = a->bias;
  for (size_t r = begin; r < end; r++) {
    const float *restrict x = a->x + r * w;
    float *restrict y = a->y + r * w;
    double sum = 0;
#pragma omp simd reduction(+ : sum)
    for (size_t i = 0; i < w; i++) sum += x[i];
    double mu = sum / (double) w;
    double var = 0;
#pragma omp simd reduction(+ : var)
    for (size_t i = 0; i < w; i++) {
      double d = x[i] - mu;
      var += d * d;
    }
    double inv = 1.0 / sqrt(var / (double) w + a->epsilon);
    for (size_t i = 0; i < w; i++) y[i] = (float) ((x[i] - mu) * inv) * scale[i] + bias[i];
    a->mean[r] = (float) mu;
    a->inv_std[r] = (float) inv;
  }
}

static void layer_norm_compute(void *kernel, OrtKernelContext *context) {
  Tensor x, scale, bias;
  if (!input(context, 0, &x) || !input(context, 1, &scale) || !input(context, 2, &bias)) return;
  float *y = output_shaped(context, 0, &x, -1);
  float *mean = output_shaped(context, 1, &x, 1);
  float *inv_std = output_shaped(context, 2, &x, 1);
  if (!y || !mean || !inv_std) return;
  size_t width = last_dim(&x);
  size_t rows = width ? x.count / width : 0;
  if (width == 0 || scale.count != width || bias.count != width) {
    fill_nan(y, x.count);
    fill_nan(mean, rows);
    fill_nan(inv_std, rows);
    return;
  }
  LayerNormForwardArgs args = {x.data, scale.data, bias.data, y, mean, inv_std, width,
                               ((const LayerNormKernel *) kernel)->epsilon};
  parallel_for(layer_norm_rows, &args, rows, ELEMENT_GRAIN / width + 1);
}

/* ---------------------------------------------------------------- GeluGrad */

/* e^x for x <= 0 (float32, about 1 ulp): 2^n · p(r), r = x − n·ln 2, |r| <= ln2/2. */
static inline float exp_neg(float x) {
  x = x < -87.0f ? -87.0f : x;
  float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693145751953125f - n * 1.428606765330187045e-6f;
  float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.16666667163372f + r * (0.041666645556688f
      + r * (0.008333703875541687f + r * 0.0013887316454201937f)))));
  int32_t bits = ((int32_t) n + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

typedef struct {
  const float *dy;
  const float *x;
  float *dx;
} GeluArgs;

/* Φ through erfc(|t|) = q(s)·e^(−t²), t = x/√2, s = 1/(1 + p|t|) (Abramowitz and Stegun 7.1.26,
 * |error| <= 1.5e-7), whose e^(−t²) is also φ's. */
CLONED
static void gelu_grad_range(const void *args, size_t begin, size_t end) {
  const GeluArgs *a = (const GeluArgs *) args;
  const float *restrict dy = a->dy;
  const float *restrict x = a->x;
  float *restrict dx = a->dx;
  for (size_t i = begin; i < end; i++) {
    float xi = x[i];
    float t = xi * 0.70710678118654752f;
    float at = __builtin_fabsf(t);
    float e = exp_neg(-t * t);
    float s = 1.0f / (1.0f + 0.3275911f * at);
    float q = s * (0.254829592f + s * (-0.284496736f + s * (1.421413741f + s * (-1.453152027f + s * 1.061405429f))));
    float erfc_at = q * e;
    float cdf = t >= 0 ? 1.0f - 0.5f * erfc_at : 0.5f * erfc_at;
    float density = 0.3989422804014327f * e;
    dx[i] = dy[i] * (cdf + xi * density);
  }
}

static void gelu_grad_compute(void *kernel, OrtKernelContext *context) {
  (void) kernel;
  Tensor dy, x;
  if (!input(context, 0, &dy) || !input(context, 1, &x)) return;
  float *dx = output_like(context, &x);
  if (!dx) return;
  if (dy.count != x.count) {
    fill_nan(dx, x.count);
    return;
  }
  GeluArgs args = {dy.data, x.data, dx};
  parallel_for(gelu_grad_range, &args, x.count, ELEMENT_GRAIN);
}

/* ---------------------------------------------------------------- rows of the last axis */

/* Σ a·b over n floats, vectorized (the simd reduction lets the compiler split the sum into lanes). */
static inline float dot(const float *restrict a, const float *restrict b, size_t n) {
  float s = 0;
#pragma omp simd reduction(+ : s)
  for (size_t i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

typedef struct {
  const float *dy;
  const float *y;
  float *dx;
  size_t width;
} SoftmaxArgs;

CLONED
static void softmax_grad_rows(const void *args, size_t begin, size_t end) {
  const SoftmaxArgs *a = (const SoftmaxArgs *) args;
  size_t w = a->width;
  for (size_t r = begin; r < end; r++) {
    const float *restrict dy = a->dy + r * w;
    const float *restrict y = a->y + r * w;
    float *restrict dx = a->dx + r * w;
    float s = dot(dy, y, w);
    for (size_t i = 0; i < w; i++) dx[i] = y[i] * (dy[i] - s);
  }
}

static void softmax_grad_compute(void *kernel, OrtKernelContext *context) {
  (void) kernel;
  Tensor dy, y;
  if (!input(context, 0, &dy) || !input(context, 1, &y)) return;
  float *dx = output_like(context, &y);
  if (!dx) return;
  size_t width = last_dim(&y);
  if (dy.count != y.count || width == 0) {
    fill_nan(dx, y.count);
    return;
  }
  SoftmaxArgs args = {dy.data, y.data, dx, width};
  size_t rows = y.count / width;
  parallel_for(softmax_grad_rows, &args, rows, ELEMENT_GRAIN / width + 1);
}

typedef struct {
  const float *dy;
  const float *x;
  const float *scale;
  const float *mean;
  const float *inv_std;
  float *dx;
  size_t width;
} LayerNormArgs;

CLONED
static void layer_norm_grad_rows(const void *args, size_t begin, size_t end) {
  const LayerNormArgs *a = (const LayerNormArgs *) args;
  size_t w = a->width;
  const float *restrict scale = a->scale;
  for (size_t r = begin; r < end; r++) {
    const float *restrict dy = a->dy + r * w;
    const float *restrict x = a->x + r * w;
    float *restrict dx = a->dx + r * w;
    float mu = a->mean[r];
    float inv = a->inv_std[r];
    float sum_g = 0, sum_gc = 0;
#pragma omp simd reduction(+ : sum_g, sum_gc)
    for (size_t i = 0; i < w; i++) {
      float gh = dy[i] * scale[i];
      sum_g += gh;
      sum_gc += gh * (x[i] - mu);
    }
    float m1 = sum_g / (float) w;
    float k = inv * inv * (sum_gc / (float) w);
    for (size_t i = 0; i < w; i++) dx[i] = (dy[i] * scale[i] - m1 - (x[i] - mu) * k) * inv;
  }
}

static void layer_norm_grad_compute(void *kernel, OrtKernelContext *context) {
  (void) kernel;
  Tensor dy, x, scale, mean, inv_std;
  if (!input(context, 0, &dy) || !input(context, 1, &x) || !input(context, 2, &scale)
      || !input(context, 3, &mean) || !input(context, 4, &inv_std)) return;
  float *dx = output_like(context, &x);
  if (!dx) return;
  size_t width = last_dim(&x);
  size_t rows = width ? x.count / width : 0;
  if (dy.count != x.count || width == 0 || scale.count != width || mean.count != rows || inv_std.count != rows) {
    fill_nan(dx, x.count);
    return;
  }
  LayerNormArgs args = {dy.data, x.data, scale.data, mean.data, inv_std.data, dx, width};
  parallel_for(layer_norm_grad_rows, &args, rows, ELEMENT_GRAIN / width + 1);
}

/* ---------------------------------------------------------------- registration */

static void *create_kernel(const OrtCustomOp *op, const OrtApi *api, const OrtKernelInfo *info) {
  (void) op; (void) api; (void) info;
  return (void *) op;
}
static void destroy_kernel(void *kernel) { (void) kernel; }

/* LayerNorm's kernel holds its epsilon (1e-5, ONNX's default, when the node has none). */
static void *create_layer_norm_kernel(const OrtCustomOp *op, const OrtApi *api, const OrtKernelInfo *info) {
  (void) op; (void) api;
  LayerNormKernel *k = malloc(sizeof *k);
  if (!k) return NULL;
  k->epsilon = 1e-5f;
  OrtStatus *st = ((KernelInfoGetAttributeFloatFn) SLOT(SLOT_KERNEL_INFO_GET_ATTRIBUTE_FLOAT))(info, "epsilon", &k->epsilon);
  if (st) {
    ((ReleaseStatusFn) SLOT(SLOT_RELEASE_STATUS))(st);
    k->epsilon = 1e-5f;
  }
  return k;
}
static void destroy_layer_norm_kernel(void *kernel) { free(kernel); }
static const char *cpu_provider(const OrtCustomOp *op) { (void) op; return "CPUExecutionProvider"; }
static int float_type(const OrtCustomOp *op, size_t index) { (void) op; (void) index; return ELEMENT_FLOAT; }
static size_t one(const OrtCustomOp *op) { (void) op; return 1; }
static size_t two(const OrtCustomOp *op) { (void) op; return 2; }
static size_t three(const OrtCustomOp *op) { (void) op; return 3; }
static size_t five(const OrtCustomOp *op) { (void) op; return 5; }
static int required(const OrtCustomOp *op, size_t index) { (void) op; (void) index; return 0; }
static const char *layer_norm_name(const OrtCustomOp *op) { (void) op; return "LayerNorm"; }
static const char *gelu_grad_name(const OrtCustomOp *op) { (void) op; return "GeluGrad"; }
static const char *softmax_grad_name(const OrtCustomOp *op) { (void) op; return "SoftmaxGrad"; }
static const char *layer_norm_grad_name(const OrtCustomOp *op) { (void) op; return "LayerNormGrad"; }

static const OrtCustomOp ops[] = {
  {API_VERSION, create_layer_norm_kernel, layer_norm_name, cpu_provider, float_type, three, float_type, three,
   layer_norm_compute, destroy_layer_norm_kernel, required, required},
  {API_VERSION, create_kernel, gelu_grad_name, cpu_provider, float_type, two, float_type, one,
   gelu_grad_compute, destroy_kernel, required, required},
  {API_VERSION, create_kernel, softmax_grad_name, cpu_provider, float_type, two, float_type, one,
   softmax_grad_compute, destroy_kernel, required, required},
  {API_VERSION, create_kernel, layer_norm_grad_name, cpu_provider, float_type, five, float_type, one,
   layer_norm_grad_compute, destroy_kernel, required, required},
};

__attribute__((visibility("default")))
OrtStatus *RegisterCustomOps(OrtSessionOptions *options, const OrtApiBase *base) {
  ort = base->GetApi(API_VERSION);
  if (!ort) return NULL;
  OrtCustomOpDomain *domain = NULL;
  OrtStatus *st = ((CreateCustomOpDomainFn) SLOT(SLOT_CREATE_CUSTOM_OP_DOMAIN))("dev.graft", &domain);
  for (size_t i = 0; !st && i < sizeof ops / sizeof ops[0]; i++) {
    st = ((CustomOpDomainAddFn) SLOT(SLOT_CUSTOM_OP_DOMAIN_ADD))(domain, &ops[i]);
  }
  if (!st) st = ((AddCustomOpDomainFn) SLOT(SLOT_ADD_CUSTOM_OP_DOMAIN))(options, domain);
  return st;
}
