// The mixer's elementwise steps around the scan, for inference on a GPU: as candle ops they are
// a dozen launches over (B, L, D) tensors, each allocating its output (softplus alone is seven).
//
//   softplus_bias: out = softplus(dt + bias[d])             dt (B, L, D) contiguous, bias (D)
//   skip_gate:     out = (y + dskip[d] * x) * silu(z)       y, x (B, L, D) contiguous, dskip (D),
//                                                           z rows of `zstride` elements (a slice
//                                                           of in_proj's output)
// One thread per element, grid-stride; f32 arithmetic whatever the storage type.
#include "common.cuh"

template <typename T>
__device__ void softplus_bias(const T* __restrict__ dt, const float* __restrict__ bias,
                              T* __restrict__ out, size_t n, int D) {
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x) {
    const float v = ld(dt + i) + bias[i % D];
    // max(v, 0) + ln(1 + exp(-|v|)): never overflows, as on the CPU.
    st(out + i, fmaxf(v, 0.f) + log1pf(expf(-fabsf(v))));
  }
}

template <typename T>
__device__ void skip_gate(const T* __restrict__ y, const T* __restrict__ x,
                          const float* __restrict__ dskip, const T* __restrict__ z,
                          T* __restrict__ out, size_t n, int D, int zstride) {
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x) {
    const size_t row = i / D;
    const int c = (int)(i - row * D);
    const float zv = ld(z + row * zstride + c);
    st(out + i, (ld(y + i) + dskip[c] * ld(x + i)) * (zv / (1.f + expf(-zv))));
  }
}

#define GATE_KERNELS(T, NAME)                                                                  \
  extern "C" __global__ void softplus_bias_##NAME(const T* dt, const float* bias, T* out,     \
                                                  size_t n, int D) {                          \
    softplus_bias<T>(dt, bias, out, n, D);                                                     \
  }                                                                                            \
  extern "C" __global__ void skip_gate_##NAME(const T* y, const T* x, const float* dskip,     \
                                              const T* z, T* out, size_t n, int D,            \
                                              int zstride) {                                   \
    skip_gate<T>(y, x, dskip, z, out, n, D, zstride);                                          \
  }

GATE_KERNELS(float, f32)
GATE_KERNELS(__nv_bfloat16, bf16)
GATE_KERNELS(__half, f16)

// The gate of a note read added to the residual stream, one warp per token row of width d:
//   g = sigmoid(w[:d] . o + w[d:] . c + bias);  with sparse gating (tau2 >= 0) g = 0 below tau2
//   out = acc + g c;  `skipped` counts the rows whose read was skipped.
// The bias is read where it lies on the device (`has_bias` 0: no bias), and the count stays
// there, so that a gate never waits for the host.
extern "C" __global__ void gate_add_f32(const float* __restrict__ acc, const float* __restrict__ o,
                                        const float* __restrict__ c, const float* __restrict__ w,
                                        const float* __restrict__ bias, int has_bias, float tau2,
                                        float* __restrict__ out, unsigned int* skipped, int rows,
                                        int d) {
  const int warp = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
  if (warp >= rows) return;
  const size_t base = (size_t)warp * d;
  float dot = 0.f;
  for (int j = lane; j < d; j += 32) dot += w[j] * o[base + j] + w[d + j] * c[base + j];
#pragma unroll
  for (int off = 16; off > 0; off /= 2) dot += __shfl_xor_sync(FULL_MASK, dot, off);
  float g = 1.f / (1.f + expf(-(dot + (has_bias ? bias[0] : 0.f))));
  if (tau2 >= 0.f && g < tau2) {
    g = 0.f;
    if (lane == 0) atomicAdd(skipped, 1u);
  }
  for (int j = lane; j < d; j += 32) out[base + j] = acc[base + j] + g * c[base + j];
}

// The importance scorer after its first matmul, one warp per token row of h (width q):
//   x = w2 . relu(h + b1) + b2;  log_score = ln sigmoid(x) = min(x, 0) - log1p(exp(-|x|))
extern "C" __global__ void note_log_scores_f32(const float* __restrict__ h,
                                               const float* __restrict__ b1,
                                               const float* __restrict__ w2,
                                               const float* __restrict__ b2,
                                               float* __restrict__ log_scores, int rows, int q) {
  const int warp = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
  if (warp >= rows) return;
  const float* row = h + (size_t)warp * q;
  float x = 0.f;
  for (int j = lane; j < q; j += 32) x += fmaxf(row[j] + b1[j], 0.f) * w2[j];
#pragma unroll
  for (int off = 16; off > 0; off /= 2) x += __shfl_xor_sync(FULL_MASK, x, off);
  if (lane != 0) return;
  x += b2[0];
  log_scores[warp] = fminf(x, 0.f) - log1pf(expf(-fabsf(x)));
}
