// Selective scan, forward and backward, chunked over time.
//
// Shapes (row-major): x, dt (B, L, D) of type T; y (B, L, D) of type T. `rest` is one f32 buffer
// [a (D, N) | h0 (B, D, N) | b (B, L, N) | c (B, L, N)] and its gradient `grest` has the same
// layout. The forward output `out` is [y (B, L, D) | h_last (B, D, N)] of type T, and the
// backward reads the gradient `grad` of that output with the same layout.
//
//   h_t = exp(dt_t * a) * h_{t-1} + dt_t * b_t * x_t,   y_t = <h_t, c_t>
//
// Forward, in three launches: (1) `scan_state` runs each time chunk from a zero state and keeps
// its final state and the sum of its dt (a chunk multiplies the state it starts from by
// exp(a * sum dt)); (2) `scan_carry` walks the chunks in order per (batch, channel, state) and
// turns those into the state each chunk starts from; (3) `scan_out` reruns every chunk from its
// true start state and writes y (and h_last from the last chunk). One thread per (batch, chunk,
// channel) holds the N states in registers; b and c of a tile of time steps are staged in shared
// memory, since every channel of a block reads the same rows. With a single chunk (short L) only
// `scan_out` runs, starting from h0.
//
// Backward, with chunks of BWD_CHUNK steps: the forward's (1)+(2) give each chunk's start state;
// `scan_dh_state` + `scan_dh_carry` do the same for the reverse-time recurrence of the state's
// gradient (dh_{t-1} = exp(dt_t a) (dh_t + gy_t c_t)), giving the gradient entering each chunk
// from its end and the gradient of h0. `scan_bwd` then takes one thread per (batch, chunk,
// channel, state): it checkpoints the state every SUB steps of its chunk (pass A), then walks the
// sub-chunks backwards, recomputing their SUB states in registers, and accumulates the gradients.
// Sums over the N states (gradients of x and dt) use a transposing butterfly across the 16 lanes
// of a channel; sums over channels (gradients of b and c) go through shared memory and one atomic
// add per block; the gradient of a is one atomic add per thread.
#include "common.cuh"

#define TILE 32          // time steps of b / c staged in shared memory at once
#define FWD_BLOCK 128    // channels per block in the per-(batch, chunk, channel) kernels
#define SUB 16           // time steps recomputed in registers by the backward
#define NSUB 16          // sub-chunks per backward chunk
#define BWD_CHUNK (SUB * NSUB)
#define BWD_CHANNELS 16  // channels per block of scan_bwd (16 lanes each: N <= 16)

// Copies rows [t, t + nt) of a (B, L, N) f32 matrix for batch bb into shared memory.
__device__ __forceinline__ void stage_rows(float* dst, const float* m, int bb, int L, int N, int t,
                                           int nt) {
  const float* src = m + ((size_t)bb * L + t) * N;
  for (int k = threadIdx.x; k < nt * N; k += blockDim.x) dst[k] = src[k];
}

// Reads a row of N values in shared memory into v, zero beyond N (16-byte loads when N is a
// multiple of 4).
template <int MAXN>
__device__ __forceinline__ void read_row(const float* row, int N, float (&v)[MAXN]) {
  if ((N & 3) == 0) {
#pragma unroll
    for (int i = 0; i < MAXN; i += 4) {
      const float4 q = i < N ? *reinterpret_cast<const float4*>(row + i) : make_float4(0.f, 0.f, 0.f, 0.f);
      v[i] = q.x;
      v[i + 1] = q.y;
      v[i + 2] = q.z;
      v[i + 3] = q.w;
    }
  } else {
#pragma unroll
    for (int i = 0; i < MAXN; i++) v[i] = i < N ? row[i] : 0.f;
  }
}

// (1) Final state of every chunk started from zero, and the chunk's sum of dt.
// Grid (ceil(D / FWD_BLOCK), nch, B); shared memory TILE * N floats.
template <typename T, int MAXN>
__device__ void scan_state(const T* x, const T* dt, const float* rest, float* states, float* dtsum,
                           int B, int L, int D, int N, int chunk, int nch) {
  extern __shared__ float4 smem4[];
  float* sb = reinterpret_cast<float*>(smem4);
  const int d = blockIdx.x * blockDim.x + threadIdx.x, c = blockIdx.y, bb = blockIdx.z;
  const bool ok = d < D;
  const int t0 = c * chunk, t1 = min(L, t0 + chunk);
  const float* bm = rest + (size_t)D * N + (size_t)B * D * N;
  float a2[MAXN], h[MAXN], bv[MAXN];
#pragma unroll
  for (int i = 0; i < MAXN; i++) {
    a2[i] = (ok && i < N) ? rest[(size_t)d * N + i] * LOG2E : 0.f;
    h[i] = 0.f;
  }
  float s = 0.f;
  for (int tt = t0; tt < t1; tt += TILE) {
    const int nt = min(TILE, t1 - tt);
    __syncthreads();
    stage_rows(sb, bm, bb, L, N, tt, nt);
    __syncthreads();
    if (!ok) continue;
    for (int j = 0; j < nt; j++) {
      const size_t row = ((size_t)bb * L + tt + j) * D + d;
      const float dtv = ld(dt + row), u = dtv * ld(x + row);
      s += dtv;
      read_row<MAXN>(sb + j * N, N, bv);
#pragma unroll
      for (int i = 0; i < MAXN; i++) h[i] = ex2(dtv * a2[i]) * h[i] + u * bv[i];
    }
  }
  if (!ok) return;
  const size_t o = (((size_t)bb * nch + c) * D + d) * N;
  for (int i = 0; i < N; i++) states[o + i] = h[i];
  dtsum[((size_t)bb * nch + c) * D + d] = s;
}

// (2) In place: each chunk's zero-start final state becomes the state the chunk starts from.
// One thread per (batch, channel, state).
extern "C" __global__ void scan_carry(const float* rest, float* states, const float* dtsum, int B,
                                      int D, int N, int nch) {
  const size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= (size_t)B * D * N) return;
  const size_t dn = idx % ((size_t)D * N), bb = idx / ((size_t)D * N);
  const size_t d = dn / N;
  const float a2 = rest[dn] * LOG2E;
  float h = rest[(size_t)D * N + idx];
  for (int c = 0; c < nch; c++) {
    const size_t o = (bb * nch + c) * D * N + dn;
    const float local = states[o];
    states[o] = h;
    h = ex2(a2 * dtsum[(bb * nch + c) * D + d]) * h + local;
  }
}

// (3) Every chunk from its start state (h0 when nch == 1): y, and h_last from the last chunk.
// Grid (ceil(D / FWD_BLOCK), nch, B); shared memory 2 * TILE * N floats.
template <typename T, int MAXN>
__device__ void scan_out(const T* x, const T* dt, const float* rest, const float* starts, T* out,
                         int B, int L, int D, int N, int chunk, int nch) {
  extern __shared__ float4 smem4[];
  float* sb = reinterpret_cast<float*>(smem4);
  float* sc = sb + TILE * N;
  const int d = blockIdx.x * blockDim.x + threadIdx.x, c = blockIdx.y, bb = blockIdx.z;
  const bool ok = d < D;
  const int t0 = c * chunk, t1 = min(L, t0 + chunk);
  const float* bm = rest + (size_t)D * N + (size_t)B * D * N;
  const float* cm = bm + (size_t)B * L * N;
  const float* start = nch == 1 ? rest + (size_t)D * N + ((size_t)bb * D + d) * N
                                : starts + (((size_t)bb * nch + c) * D + d) * N;
  float a2[MAXN], h[MAXN], bv[MAXN], cv[MAXN];
#pragma unroll
  for (int i = 0; i < MAXN; i++) {
    a2[i] = (ok && i < N) ? rest[(size_t)d * N + i] * LOG2E : 0.f;
    h[i] = (ok && i < N) ? start[i] : 0.f;
  }
  for (int tt = t0; tt < t1; tt += TILE) {
    const int nt = min(TILE, t1 - tt);
    __syncthreads();
    stage_rows(sb, bm, bb, L, N, tt, nt);
    stage_rows(sc, cm, bb, L, N, tt, nt);
    __syncthreads();
    if (!ok) continue;
    for (int j = 0; j < nt; j++) {
      const size_t row = ((size_t)bb * L + tt + j) * D + d;
      const float dtv = ld(dt + row), u = dtv * ld(x + row);
      read_row<MAXN>(sb + j * N, N, bv);
      read_row<MAXN>(sc + j * N, N, cv);
      float y = 0.f;
#pragma unroll
      for (int i = 0; i < MAXN; i++) {
        h[i] = ex2(dtv * a2[i]) * h[i] + u * bv[i];
        y += h[i] * cv[i];
      }
      st(out + row, y);
    }
  }
  if (!ok || c != nch - 1) return;
  T* h_last = out + (size_t)B * L * D + ((size_t)bb * D + d) * N;
  for (int i = 0; i < N; i++) st(h_last + i, h[i]);
}

// Backward (1'): the state gradient entering each chunk's start when zero enters at its end:
// dh_{t-1} = exp(dt_t a) (dh_t + gy_t c_t). Grid (ceil(D / FWD_BLOCK), nch, B); shared memory
// TILE * N floats.
template <typename T, int MAXN>
__device__ void scan_dh_state(const T* dt, const float* rest, const T* grad, float* dstates,
                              int B, int L, int D, int N, int chunk, int nch) {
  extern __shared__ float4 smem4[];
  float* sc = reinterpret_cast<float*>(smem4);
  const int d = blockIdx.x * blockDim.x + threadIdx.x, c = blockIdx.y, bb = blockIdx.z;
  const bool ok = d < D;
  const int t0 = c * chunk, t1 = min(L, t0 + chunk);
  const float* cm = rest + (size_t)D * N + (size_t)B * D * N + (size_t)B * L * N;
  float a2[MAXN], dh[MAXN], cv[MAXN];
#pragma unroll
  for (int i = 0; i < MAXN; i++) {
    a2[i] = (ok && i < N) ? rest[(size_t)d * N + i] * LOG2E : 0.f;
    dh[i] = 0.f;
  }
  for (int te = t1; te > t0; te -= TILE) {
    const int tt = max(t0, te - TILE), nt = te - tt;
    __syncthreads();
    stage_rows(sc, cm, bb, L, N, tt, nt);
    __syncthreads();
    if (!ok) continue;
    for (int j = nt - 1; j >= 0; j--) {
      const size_t row = ((size_t)bb * L + tt + j) * D + d;
      const float dtv = ld(dt + row), g = ld(grad + row);
      read_row<MAXN>(sc + j * N, N, cv);
#pragma unroll
      for (int i = 0; i < MAXN; i++) dh[i] = ex2(dtv * a2[i]) * (dh[i] + g * cv[i]);
    }
  }
  if (!ok) return;
  const size_t o = (((size_t)bb * nch + c) * D + d) * N;
  for (int i = 0; i < N; i++) dstates[o + i] = dh[i];
}

// Backward (2'): in place, each chunk's zero-end gradient becomes the gradient entering the
// chunk from its end (the gradient of h_last enters the last one); writes the gradient of h0.
// One thread per (batch, channel, state).
template <typename T>
__device__ void scan_dh_carry(const float* rest, const T* grad, float* dstates, const float* dtsum,
                              float* grest, int B, int L, int D, int N, int nch) {
  const size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= (size_t)B * D * N) return;
  const size_t dn = idx % ((size_t)D * N), bb = idx / ((size_t)D * N);
  const size_t d = dn / N;
  const float a2 = rest[dn] * LOG2E;
  float g = ld(grad + (size_t)B * L * D + idx);
  for (int c = nch - 1; c >= 0; c--) {
    const size_t o = (bb * nch + c) * D * N + dn;
    const float local = dstates[o];
    dstates[o] = g;
    g = ex2(a2 * dtsum[(bb * nch + c) * D + d]) * g + local;
  }
  grest[(size_t)D * N + idx] = g;
}

// Sums v[k] over the 16 lanes of a half-warp for every k at once: afterwards lane l holds in
// v[0] the sum of the lanes' v[l & 15]. 15 shuffles for 16 sums.
__device__ __forceinline__ void transpose_sum16(float (&v)[SUB], int lane) {
#pragma unroll
  for (int s = 8; s >= 1; s >>= 1) {
    const bool up = lane & s;
#pragma unroll
    for (int i = 0; i < s; i++) {
      const float send = up ? v[i] : v[i + s];
      const float keep = up ? v[i + s] : v[i];
      v[i] = keep + __shfl_xor_sync(FULL_MASK, send, s);
    }
  }
}

// Backward (3'): gradients of x, dt (written), and of a, b, c (atomically added into grest,
// which starts zeroed). One thread per (batch, chunk, channel, state), blocks of BWD_CHANNELS
// channels x 16 lanes; N <= 16. Grid (ceil(D / BWD_CHANNELS), nch, B).
template <typename T>
__device__ void scan_bwd(const T* x, const T* dt, const float* rest, const T* grad,
                         const float* starts, const float* dends, T* gx, T* gdt, float* grest,
                         int B, int L, int D, int N, int nch) {
  constexpr int WARPS = BWD_CHANNELS * 16 / 32;
  __shared__ float red[WARPS][SUB][16][2];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, n = tid & 15;
  const int d = blockIdx.x * BWD_CHANNELS + (tid >> 4), c = blockIdx.y, bb = blockIdx.z;
  const bool okd = d < D, ok = okd && n < N;
  const int t0 = c * BWD_CHUNK, t1 = min(L, t0 + BWD_CHUNK);
  const float* bm = rest + (size_t)D * N + (size_t)B * D * N;
  const float* cm = bm + (size_t)B * L * N;
  float* gbm = grest + (size_t)D * N + (size_t)B * D * N;
  float* gcm = gbm + (size_t)B * L * N;
  const float av = ok ? rest[(size_t)d * N + n] : 0.f, a2 = av * LOG2E;
  const size_t so = (((size_t)bb * nch + c) * D + d) * N + n;
  float h = ok ? starts[so] : 0.f, dh = ok ? dends[so] : 0.f;

  // Pass A: the state at the start of every sub-chunk.
  float ckpt[NSUB];
  for (int k = 0; k < NSUB; k++) {
    ckpt[k] = h;
#pragma unroll
    for (int j = 0; j < SUB; j++) {
      const int t = t0 + k * SUB + j;
      if (t < t1 && ok) {
        const size_t row = ((size_t)bb * L + t) * D + d;
        const float dtv = ld(dt + row), xv = ld(x + row);
        h = ex2(dtv * a2) * h + dtv * xv * bm[((size_t)bb * L + t) * N + n];
      }
    }
  }

  // Pass B: sub-chunks in reverse.
  float ga = 0.f;
  for (int k = NSUB - 1; k >= 0; k--) {
    const int base = t0 + k * SUB;
    if (base >= t1) continue;  // the same for the whole block
    float hs[SUB + 1], es[SUB], gu[SUB], gd[SUB];
    hs[0] = ckpt[k];
#pragma unroll
    for (int j = 0; j < SUB; j++) {
      const int t = base + j;
      es[j] = 0.f;
      hs[j + 1] = 0.f;
      if (t < t1 && ok) {
        const size_t row = ((size_t)bb * L + t) * D + d;
        const float dtv = ld(dt + row), xv = ld(x + row);
        es[j] = ex2(dtv * a2);
        hs[j + 1] = es[j] * hs[j] + dtv * xv * bm[((size_t)bb * L + t) * N + n];
      }
    }
#pragma unroll
    for (int j = SUB - 1; j >= 0; j--) {
      const int t = base + j;
      float gb = 0.f, gc = 0.f;
      gu[j] = 0.f;
      gd[j] = 0.f;
      if (t < t1 && ok) {
        const size_t row = ((size_t)bb * L + t) * D + d;
        const size_t bn = ((size_t)bb * L + t) * N + n;
        const float dtv = ld(dt + row), xv = ld(x + row), g = ld(grad + row);
        const float dhi = dh + g * cm[bn];
        gc = g * hs[j + 1];
        gb = dhi * dtv * xv;
        gu[j] = dhi * bm[bn];
        const float ge = dhi * hs[j] * es[j];
        gd[j] = ge * av;
        ga += ge * dtv;
        dh = dhi * es[j];
      }
      // The two channels of this warp, then the block's warps through shared memory.
      gb += __shfl_xor_sync(FULL_MASK, gb, 16);
      gc += __shfl_xor_sync(FULL_MASK, gc, 16);
      if (lane < 16) {
        red[warp][j][n][0] = gb;
        red[warp][j][n][1] = gc;
      }
    }
    transpose_sum16(gu, lane);
    transpose_sum16(gd, lane);
    {
      const int t = base + n;  // after the transpose, lane n holds step n of the sub-chunk
      if (okd && t < t1) {
        const size_t row = ((size_t)bb * L + t) * D + d;
        const float dtv = ld(dt + row), xv = ld(x + row);
        st(gx + row, gu[0] * dtv);
        st(gdt + row, gd[0] + gu[0] * xv);
      }
    }
    __syncthreads();
    for (int idx = tid; idx < SUB * 16 * 2; idx += blockDim.x) {
      const int j = idx >> 5, nn = (idx >> 1) & 15, w = idx & 1;
      float s = 0.f;
#pragma unroll
      for (int q = 0; q < WARPS; q++) s += red[q][j][nn][w];
      const int t = base + j;
      if (t < t1 && nn < N) atomicAdd((w ? gcm : gbm) + ((size_t)bb * L + t) * N + nn, s);
    }
    __syncthreads();
  }
  if (ok) atomicAdd(grest + (size_t)d * N + n, ga);
}

#define SCAN_FWD(NAME, T, MAXN)                                                                  \
  extern "C" __global__ void scan_state_##NAME##_##MAXN(const T* x, const T* dt,              \
                                                         const float* rest, float* states,     \
                                                         float* dtsum, int B, int L, int D,    \
                                                         int N, int chunk, int nch) {          \
    scan_state<T, MAXN>(x, dt, rest, states, dtsum, B, L, D, N, chunk, nch);                   \
  }                                                                                            \
  extern "C" __global__ void scan_out_##NAME##_##MAXN(const T* x, const T* dt,                \
                                                       const float* rest, const float* starts, \
                                                       T* out, int B, int L, int D, int N,     \
                                                       int chunk, int nch) {                   \
    scan_out<T, MAXN>(x, dt, rest, starts, out, B, L, D, N, chunk, nch);                       \
  }

#define SCAN_BWD(NAME, T)                                                                       \
  extern "C" __global__ void scan_dh_state_##NAME(const T* dt, const float* rest,              \
                                                  const T* grad, float* dstates, int B, int L, \
                                                  int D, int N, int chunk, int nch) {          \
    scan_dh_state<T, 16>(dt, rest, grad, dstates, B, L, D, N, chunk, nch);                     \
  }                                                                                            \
  extern "C" __global__ void scan_dh_carry_##NAME(const float* rest, const T* grad,            \
                                                  float* dstates, const float* dtsum,          \
                                                  float* grest, int B, int L, int D, int N,    \
                                                  int nch) {                                   \
    scan_dh_carry<T>(rest, grad, dstates, dtsum, grest, B, L, D, N, nch);                      \
  }                                                                                            \
  extern "C" __global__ void __launch_bounds__(BWD_CHANNELS * 16)                              \
      scan_bwd_##NAME(const T* x, const T* dt, const float* rest, const T* grad,               \
                      const float* starts, const float* dends, T* gx, T* gdt, float* grest,    \
                      int B, int L, int D, int N, int nch) {                                   \
    scan_bwd<T>(x, dt, rest, grad, starts, dends, gx, gdt, grest, B, L, D, N, nch);            \
  }

SCAN_FWD(f32, float, 16)
SCAN_FWD(f32, float, 64)
SCAN_FWD(bf16, __nv_bfloat16, 16)
SCAN_FWD(bf16, __nv_bfloat16, 64)
SCAN_FWD(f16, __half, 16)
SCAN_FWD(f16, __half, 64)
SCAN_BWD(f32, float)
SCAN_BWD(bf16, __nv_bfloat16)
SCAN_BWD(f16, __half)
