// Causal depthwise conv1d, forward and backward.
//
// x (B, L, D) of type T; `wb` (D, K + 1) f32 = the taps with the bias as last column; `prev`
// (B, D, K - 1) f32, the K - 1 inputs before x[0] (oldest first). The forward output `out` is
// [y (B, L, D) | next prev (B, D, K - 1)] of type T, and the backward reads the gradient `grad`
// of that output with the same layout and writes gx (T) and `grest` = [gwb (D, K + 1) |
// gprev (B, D, K - 1)] f32 (zeroed by the caller: gwb is accumulated with atomic adds).
//
//   y_t[d] = bias[d] + sum_k w[d, k] * in_{t + k}[d],   in = prev ++ x (padded time p)
//
// One thread per (batch, channel, chunk of time steps); a block covers CONV_BLOCK consecutive
// channels, so every row access is coalesced. For K in 2..=4 (`conv_*_k`) a thread keeps its K
// inputs (and, backward, K gradients) in a register window and loads the rows of TT steps at
// once; other widths re-read the K taps of each output through the cache.
#include "common.cuh"

#define CONV_BLOCK 128
#define MAXK 16  // kernel widths up to MAXK in the backward (one register per tap)
#define TT 16    // steps whose rows the windowed kernels load at once

// Input at padded time p (p < K - 1: prev; else x[p - K + 1]).
template <typename T>
__device__ __forceinline__ float conv_in(const T* x, const float* prev, int bb, int d, int p,
                                         int L, int D, int km1) {
  return p < km1 ? prev[((size_t)bb * D + d) * km1 + p] : ld(x + ((size_t)bb * L + p - km1) * D + d);
}

// Grid (ceil(D / CONV_BLOCK), ceil(L / chunk), B).
template <typename T>
__device__ void conv_fwd(const T* __restrict__ x, const float* __restrict__ wb,
                         const float* __restrict__ prev, T* __restrict__ out, int B, int L, int D,
                         int K, int chunk) {
  const int d = blockIdx.x * blockDim.x + threadIdx.x, bb = blockIdx.z;
  if (d >= D) return;
  const int km1 = K - 1, t0 = blockIdx.y * chunk, t1 = min(L, t0 + chunk);
  const float* w = wb + (size_t)d * (K + 1);
#pragma unroll 4
  for (int t = t0; t < t1; t++) {
    float acc = w[K];
    for (int k = 0; k < K; k++) acc += w[k] * conv_in(x, prev, bb, d, t + k, L, D, km1);
    st(out + ((size_t)bb * L + t) * D + d, acc);
  }
  if (blockIdx.y != 0) return;
  T* next = out + (size_t)B * L * D + ((size_t)bb * D + d) * km1;
  for (int m = 0; m < km1; m++) st(next + m, conv_in(x, prev, bb, d, L + m, L, D, km1));
}

// Gradient of the input at padded time p: the outputs that read it, plus the next prev.
template <typename T>
__device__ __forceinline__ float conv_gin(const float* w, const T* grad, int bb, int d, int p,
                                          int B, int L, int D, int K) {
  float g = 0.f;
  for (int k = 0; k < K; k++) {
    const int t = p - k;
    if (t >= 0 && t < L) g += w[k] * ld(grad + ((size_t)bb * L + t) * D + d);
  }
  if (p >= L) g += ld(grad + (size_t)B * L * D + ((size_t)bb * D + d) * (K - 1) + p - L);
  return g;
}

// Grid (ceil(D / CONV_BLOCK), ceil(L / chunk), B); K <= MAXK.
template <typename T>
__device__ void conv_bwd(const T* __restrict__ x, const float* __restrict__ wb,
                         const float* __restrict__ prev, const T* __restrict__ grad,
                         T* __restrict__ gx, float* __restrict__ grest, int B, int L, int D, int K,
                         int chunk) {
  const int d = blockIdx.x * blockDim.x + threadIdx.x, bb = blockIdx.z;
  if (d >= D) return;
  const int km1 = K - 1, t0 = blockIdx.y * chunk, t1 = min(L, t0 + chunk);
  const float* w = wb + (size_t)d * (K + 1);
  float gw[MAXK], gbias = 0.f;
#pragma unroll
  for (int k = 0; k < MAXK; k++) gw[k] = 0.f;
  for (int t = t0; t < t1; t++) {
    const size_t row = ((size_t)bb * L + t) * D + d;
    const float g = ld(grad + row);
    gbias += g;
#pragma unroll
    for (int k = 0; k < MAXK; k++) {
      if (k < K) gw[k] += g * conv_in(x, prev, bb, d, t + k, L, D, km1);
    }
    st(gx + row, conv_gin(w, grad, bb, d, t + km1, B, L, D, K));
  }
  float* gwb = grest + (size_t)d * (K + 1);
#pragma unroll
  for (int k = 0; k < MAXK; k++) {
    if (k < K) atomicAdd(gwb + k, gw[k]);
  }
  atomicAdd(gwb + K, gbias);
  if (blockIdx.y != 0) return;
  float* gprev = grest + (size_t)D * (K + 1) + ((size_t)bb * D + d) * km1;
  for (int m = 0; m < km1; m++) gprev[m] = conv_gin(w, grad, bb, d, m, B, L, D, K);
}

// Forward with the K inputs of the current step in registers (compile-time K).
template <typename T, int K>
__device__ void conv_fwd_k(const T* __restrict__ x, const float* __restrict__ wb,
                           const float* __restrict__ prev, T* __restrict__ out, int B, int L,
                           int D, int chunk) {
  const int d = blockIdx.x * blockDim.x + threadIdx.x, bb = blockIdx.z;
  if (d >= D) return;
  const int km1 = K - 1, t0 = blockIdx.y * chunk, t1 = min(L, t0 + chunk);
  const size_t col = (size_t)bb * L * D + d;
  float w[K], win[K];
#pragma unroll
  for (int k = 0; k < K; k++) w[k] = wb[(size_t)d * (K + 1) + k];
  const float bias = wb[(size_t)d * (K + 1) + K];
#pragma unroll
  for (int k = 0; k < K - 1; k++) win[k] = conv_in(x, prev, bb, d, t0 + k, L, D, km1);
  for (int t = t0; t < t1; t += TT) {
    float xs[TT];
#pragma unroll
    for (int j = 0; j < TT; j++) xs[j] = t + j < t1 ? ld(x + col + (size_t)(t + j) * D) : 0.f;
#pragma unroll
    for (int j = 0; j < TT; j++) {
      if (t + j < t1) {
        win[K - 1] = xs[j];  // input at padded time t + j + K - 1 is x[t + j]
        float acc = bias;
#pragma unroll
        for (int k = 0; k < K; k++) acc += w[k] * win[k];
        st(out + col + (size_t)(t + j) * D, acc);
#pragma unroll
        for (int k = 0; k < K - 1; k++) win[k] = win[k + 1];
      }
    }
  }
  if (blockIdx.y != 0) return;
  T* next = out + (size_t)B * L * D + ((size_t)bb * D + d) * km1;
  for (int m = 0; m < km1; m++) st(next + m, conv_in(x, prev, bb, d, L + m, L, D, km1));
}

// Backward with register windows of the K inputs and the K output gradients that touch the
// current step (compile-time K).
template <typename T, int K>
__device__ void conv_bwd_k(const T* __restrict__ x, const float* __restrict__ wb,
                           const float* __restrict__ prev, const T* __restrict__ grad,
                           T* __restrict__ gx, float* __restrict__ grest, int B, int L, int D,
                           int chunk) {
  const int d = blockIdx.x * blockDim.x + threadIdx.x, bb = blockIdx.z;
  if (d >= D) return;
  const int km1 = K - 1, t0 = blockIdx.y * chunk, t1 = min(L, t0 + chunk);
  const size_t col = (size_t)bb * L * D + d;
  const T* gnext = grad + (size_t)B * L * D + ((size_t)bb * D + d) * km1;
  float w[K], win[K], gwin[K], gw[K], gbias = 0.f;
#pragma unroll
  for (int k = 0; k < K; k++) {
    w[k] = wb[(size_t)d * (K + 1) + k];
    gw[k] = 0.f;
  }
  // win[k] = input at padded time t + k; gwin[k] = gradient of y at time t + k (0 past L).
#pragma unroll
  for (int k = 0; k < K - 1; k++) {
    win[k] = conv_in(x, prev, bb, d, t0 + k, L, D, km1);
    gwin[k] = t0 + k < L ? ld(grad + col + (size_t)(t0 + k) * D) : 0.f;
  }
  for (int t = t0; t < t1; t += TT) {
    float xs[TT], gs[TT];
#pragma unroll
    for (int j = 0; j < TT; j++) {
      xs[j] = t + j < t1 ? ld(x + col + (size_t)(t + j) * D) : 0.f;
      const int tg = t + j + km1;
      gs[j] = (t + j < t1 && tg < L) ? ld(grad + col + (size_t)tg * D) : 0.f;
    }
#pragma unroll
    for (int j = 0; j < TT; j++) {
      const int s = t + j;
      if (s < t1) {
        win[K - 1] = xs[j];
        gwin[K - 1] = gs[j];
        // x[s] sits at padded time p = s + K - 1 and feeds y at times p - k.
        float g = 0.f;
#pragma unroll
        for (int k = 0; k < K; k++) g += w[k] * gwin[K - 1 - k];
        if (s + km1 >= L) g += ld(gnext + s + km1 - L);
        st(gx + col + (size_t)s * D, g);
        // y at time s reads the inputs at padded times s .. s + K - 1.
        gbias += gwin[0];
#pragma unroll
        for (int k = 0; k < K; k++) gw[k] += gwin[0] * win[k];
#pragma unroll
        for (int k = 0; k < K - 1; k++) {
          win[k] = win[k + 1];
          gwin[k] = gwin[k + 1];
        }
      }
    }
  }
  float* gwb = grest + (size_t)d * (K + 1);
#pragma unroll
  for (int k = 0; k < K; k++) atomicAdd(gwb + k, gw[k]);
  atomicAdd(gwb + K, gbias);
  if (blockIdx.y != 0) return;
  float* gprev = grest + (size_t)D * (K + 1) + ((size_t)bb * D + d) * km1;
  for (int m = 0; m < km1; m++) gprev[m] = conv_gin(w, grad, bb, d, m, B, L, D, K);
}

#define CONV(NAME, T)                                                                          \
  extern "C" __global__ void conv_fwd_##NAME(const T* x, const float* wb, const float* prev,  \
                                             T* out, int B, int L, int D, int K, int chunk) { \
    switch (K) {                                                                              \
      case 2: conv_fwd_k<T, 2>(x, wb, prev, out, B, L, D, chunk); break;                      \
      case 3: conv_fwd_k<T, 3>(x, wb, prev, out, B, L, D, chunk); break;                      \
      case 4: conv_fwd_k<T, 4>(x, wb, prev, out, B, L, D, chunk); break;                      \
      default: conv_fwd<T>(x, wb, prev, out, B, L, D, K, chunk);                              \
    }                                                                                         \
  }                                                                                           \
  extern "C" __global__ void conv_bwd_##NAME(const T* x, const float* wb, const float* prev,  \
                                             const T* grad, T* gx, float* grest, int B, int L, \
                                             int D, int K, int chunk) {                       \
    switch (K) {                                                                              \
      case 2: conv_bwd_k<T, 2>(x, wb, prev, grad, gx, grest, B, L, D, chunk); break;          \
      case 3: conv_bwd_k<T, 3>(x, wb, prev, grad, gx, grest, B, L, D, chunk); break;          \
      case 4: conv_bwd_k<T, 4>(x, wb, prev, grad, gx, grest, B, L, D, chunk); break;          \
      default: conv_bwd<T>(x, wb, prev, grad, gx, grest, B, L, D, K, chunk);                  \
    }                                                                                         \
  }

CONV(f32, float)
CONV(bf16, __nv_bfloat16)
CONV(f16, __half)
