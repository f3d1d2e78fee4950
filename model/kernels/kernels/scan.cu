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
// channel, state), a block holding 16 channels x 16 states and walking the channel groups
// blockIdx.x, blockIdx.x + gridDim.x, ... of its (batch, chunk): it checkpoints the state every
// SUB steps of the chunk (pass A), then walks the sub-chunks backwards, recomputing their SUB
// states in registers, and accumulates the gradients. Sums over the N states (gradients of x and
// dt) use a transposing butterfly across the 16 lanes of a channel; sums over channels (gradients
// of b and c) go through shared memory into a per-block accumulator for the whole chunk, added to
// global memory once at the end; the gradient of a is left per (batch, chunk) in the start-state
// buffer and summed by `scan_ga_reduce`.
//
// The per-(batch, chunk, channel) kernels load x and dt a tile of TILE steps ahead into
// registers, so that each thread has many loads in flight instead of one per step.
#include "common.cuh"

#define TILE 16          // time steps of b / c staged in shared memory (and x / dt prefetched) at once
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

// Column d of steps [t, t + n) of a (B, L, D) tensor, `at` being the index of step t: v[j] for
// j < n, zero beyond.
template <typename T>
__device__ __forceinline__ void load_col(float (&v)[TILE], const T* m, size_t at, int D, int n) {
#pragma unroll
  for (int j = 0; j < TILE; j++) v[j] = j < n ? ld(m + at + (size_t)j * D) : 0.f;
}

__device__ __forceinline__ void copy_tile(float (&dst)[TILE], const float (&src)[TILE]) {
#pragma unroll
  for (int j = 0; j < TILE; j++) dst[j] = src[j];
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
__device__ void scan_state(const T* __restrict__ x, const T* __restrict__ dt,
                           const float* __restrict__ rest, float* __restrict__ states,
                           float* __restrict__ dtsum, int B, int L, int D, int N, int chunk,
                           int nch) {
  extern __shared__ float4 smem4[];
  float* sb = reinterpret_cast<float*>(smem4);
  const int d = blockIdx.x * blockDim.x + threadIdx.x, c = blockIdx.y, bb = blockIdx.z;
  const bool ok = d < D;
  const int t0 = c * chunk, t1 = min(L, t0 + chunk);
  const float* bm = rest + (size_t)D * N + (size_t)B * D * N;
  const size_t col = (size_t)bb * L * D + d;
  float a2[MAXN], h[MAXN], bv[MAXN], xr[TILE], dr[TILE], xn[TILE], dn[TILE];
#pragma unroll
  for (int i = 0; i < MAXN; i++) {
    a2[i] = (ok && i < N) ? rest[(size_t)d * N + i] * LOG2E : 0.f;
    h[i] = 0.f;
  }
  load_col(xr, x, col + (size_t)t0 * D, D, ok ? t1 - t0 : 0);
  load_col(dr, dt, col + (size_t)t0 * D, D, ok ? t1 - t0 : 0);
  float s = 0.f;
  for (int tt = t0; tt < t1; tt += TILE) {
    const int nt = min(TILE, t1 - tt), nn = ok ? t1 - tt - TILE : 0;
    __syncthreads();
    stage_rows(sb, bm, bb, L, N, tt, nt);
    __syncthreads();
    load_col(xn, x, col + (size_t)(tt + TILE) * D, D, nn);
    load_col(dn, dt, col + (size_t)(tt + TILE) * D, D, nn);
#pragma unroll
    for (int j = 0; j < TILE; j++) {
      if (ok && j < nt) {
        const float dtv = dr[j], u = dtv * xr[j];
        s += dtv;
        read_row<MAXN>(sb + j * N, N, bv);
#pragma unroll
        for (int i = 0; i < MAXN; i++) h[i] = ex2(dtv * a2[i]) * h[i] + u * bv[i];
      }
    }
    copy_tile(xr, xn);
    copy_tile(dr, dn);
  }
  if (!ok) return;
  const size_t o = (((size_t)bb * nch + c) * D + d) * N;
#pragma unroll
  for (int i = 0; i < MAXN; i++) {
    if (i < N) states[o + i] = h[i];
  }
  dtsum[((size_t)bb * nch + c) * D + d] = s;
}

// (2) In place: each chunk's zero-start final state becomes the state the chunk starts from.
// One thread per (batch, channel, state); loads CARRY_AHEAD chunks ahead.
#define CARRY_AHEAD 8
extern "C" __global__ void scan_carry(const float* rest, float* states, const float* dtsum, int B,
                                      int D, int N, int nch) {
  const size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= (size_t)B * D * N) return;
  const size_t dn = idx % ((size_t)D * N), bb = idx / ((size_t)D * N);
  const size_t d = dn / N;
  const float a2 = rest[dn] * LOG2E;
  float h = rest[(size_t)D * N + idx];
  for (int c0 = 0; c0 < nch; c0 += CARRY_AHEAD) {
    float local[CARRY_AHEAD], sum[CARRY_AHEAD];
#pragma unroll
    for (int k = 0; k < CARRY_AHEAD; k++) {
      const int c = c0 + k;
      local[k] = c < nch ? states[(bb * nch + c) * D * N + dn] : 0.f;
      sum[k] = c < nch ? dtsum[(bb * nch + c) * D + d] : 0.f;
    }
#pragma unroll
    for (int k = 0; k < CARRY_AHEAD; k++) {
      const int c = c0 + k;
      if (c < nch) {
        states[(bb * nch + c) * D * N + dn] = h;
        h = ex2(a2 * sum[k]) * h + local[k];
      }
    }
  }
}

// (3) Every chunk from its start state (h0 when nch == 1): y, and h_last from the last chunk.
// Grid (ceil(D / FWD_BLOCK), nch, B); shared memory 2 * TILE * N floats.
template <typename T, int MAXN>
__device__ void scan_out(const T* __restrict__ x, const T* __restrict__ dt,
                         const float* __restrict__ rest, const float* __restrict__ starts,
                         T* __restrict__ out, int B, int L, int D, int N, int chunk, int nch) {
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
  const size_t col = (size_t)bb * L * D + d;
  float a2[MAXN], h[MAXN], bv[MAXN], cv[MAXN], xr[TILE], dr[TILE], xn[TILE], dn[TILE];
#pragma unroll
  for (int i = 0; i < MAXN; i++) {
    a2[i] = (ok && i < N) ? rest[(size_t)d * N + i] * LOG2E : 0.f;
    h[i] = (ok && i < N) ? start[i] : 0.f;
  }
  load_col(xr, x, col + (size_t)t0 * D, D, ok ? t1 - t0 : 0);
  load_col(dr, dt, col + (size_t)t0 * D, D, ok ? t1 - t0 : 0);
  for (int tt = t0; tt < t1; tt += TILE) {
    const int nt = min(TILE, t1 - tt), nn = ok ? t1 - tt - TILE : 0;
    __syncthreads();
    stage_rows(sb, bm, bb, L, N, tt, nt);
    stage_rows(sc, cm, bb, L, N, tt, nt);
    __syncthreads();
    load_col(xn, x, col + (size_t)(tt + TILE) * D, D, nn);
    load_col(dn, dt, col + (size_t)(tt + TILE) * D, D, nn);
#pragma unroll
    for (int j = 0; j < TILE; j++) {
      if (ok && j < nt) {
        const float dtv = dr[j], u = dtv * xr[j];
        read_row<MAXN>(sb + j * N, N, bv);
        read_row<MAXN>(sc + j * N, N, cv);
        float y = 0.f;
#pragma unroll
        for (int i = 0; i < MAXN; i++) {
          h[i] = ex2(dtv * a2[i]) * h[i] + u * bv[i];
          y += h[i] * cv[i];
        }
        st(out + col + (size_t)(tt + j) * D, y);
      }
    }
    copy_tile(xr, xn);
    copy_tile(dr, dn);
  }
  if (!ok || c != nch - 1) return;
  T* h_last = out + (size_t)B * L * D + ((size_t)bb * D + d) * N;
#pragma unroll
  for (int i = 0; i < MAXN; i++) {
    if (i < N) st(h_last + i, h[i]);
  }
}

// Backward (1'): the state gradient entering each chunk's start when zero enters at its end:
// dh_{t-1} = exp(dt_t a) (dh_t + gy_t c_t). Grid (ceil(D / FWD_BLOCK), nch, B); shared memory
// TILE * N floats. Tiles run backwards in time.
template <typename T, int MAXN>
__device__ void scan_dh_state(const T* __restrict__ dt, const float* __restrict__ rest,
                              const T* __restrict__ grad, float* __restrict__ dstates, int B,
                              int L, int D, int N, int chunk, int nch) {
  extern __shared__ float4 smem4[];
  float* sc = reinterpret_cast<float*>(smem4);
  const int d = blockIdx.x * blockDim.x + threadIdx.x, c = blockIdx.y, bb = blockIdx.z;
  const bool ok = d < D;
  const int t0 = c * chunk, t1 = min(L, t0 + chunk);
  const float* cm = rest + (size_t)D * N + (size_t)B * D * N + (size_t)B * L * N;
  const size_t col = (size_t)bb * L * D + d;
  float a2[MAXN], dh[MAXN], cv[MAXN], gr[TILE], dr[TILE], gn[TILE], dn[TILE];
#pragma unroll
  for (int i = 0; i < MAXN; i++) {
    a2[i] = (ok && i < N) ? rest[(size_t)d * N + i] * LOG2E : 0.f;
    dh[i] = 0.f;
  }
  // Tile k covers steps [max(t0, te - TILE), te) with te = t1 - k * TILE.
  int ts = max(t0, t1 - TILE);
  load_col(gr, grad, col + (size_t)ts * D, D, ok ? t1 - ts : 0);
  load_col(dr, dt, col + (size_t)ts * D, D, ok ? t1 - ts : 0);
  for (int te = t1; te > t0; te = ts, ts = max(t0, ts - TILE)) {
    const int nt = te - ts, ps = max(t0, ts - TILE), np = ok ? ts - ps : 0;
    __syncthreads();
    stage_rows(sc, cm, bb, L, N, ts, nt);
    __syncthreads();
    load_col(gn, grad, col + (size_t)ps * D, D, np);
    load_col(dn, dt, col + (size_t)ps * D, D, np);
#pragma unroll
    for (int j = TILE - 1; j >= 0; j--) {
      if (ok && j < nt) {
        const float dtv = dr[j], g = gr[j];
        read_row<MAXN>(sc + j * N, N, cv);
#pragma unroll
        for (int i = 0; i < MAXN; i++) dh[i] = ex2(dtv * a2[i]) * (dh[i] + g * cv[i]);
      }
    }
    copy_tile(gr, gn);
    copy_tile(dr, dn);
  }
  if (!ok) return;
  const size_t o = (((size_t)bb * nch + c) * D + d) * N;
#pragma unroll
  for (int i = 0; i < MAXN; i++) {
    if (i < N) dstates[o + i] = dh[i];
  }
}

// Backward (2'): in place, each chunk's zero-end gradient becomes the gradient entering the
// chunk from its end (the gradient of h_last enters the last one); writes the gradient of h0.
// One thread per (batch, channel, state); loads CARRY_AHEAD chunks ahead.
template <typename T>
__device__ void scan_dh_carry(const float* rest, const T* grad, float* dstates, const float* dtsum,
                              float* grest, int B, int L, int D, int N, int nch) {
  const size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= (size_t)B * D * N) return;
  const size_t dn = idx % ((size_t)D * N), bb = idx / ((size_t)D * N);
  const size_t d = dn / N;
  const float a2 = rest[dn] * LOG2E;
  float g = ld(grad + (size_t)B * L * D + idx);
  for (int c0 = nch - 1; c0 >= 0; c0 -= CARRY_AHEAD) {
    float local[CARRY_AHEAD], sum[CARRY_AHEAD];
#pragma unroll
    for (int k = 0; k < CARRY_AHEAD; k++) {
      const int c = c0 - k;
      local[k] = c >= 0 ? dstates[(bb * nch + c) * D * N + dn] : 0.f;
      sum[k] = c >= 0 ? dtsum[(bb * nch + c) * D + d] : 0.f;
    }
#pragma unroll
    for (int k = 0; k < CARRY_AHEAD; k++) {
      const int c = c0 - k;
      if (c >= 0) {
        dstates[(bb * nch + c) * D * N + dn] = g;
        g = ex2(a2 * sum[k]) * g + local[k];
      }
    }
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

// Backward (3'): gradients of x and dt (written), of b and c (added into grest, which starts
// zeroed), and per (batch, chunk) of a (written over the chunk's start state in `starts`). One
// thread per (batch, chunk, channel, state), blocks of BWD_CHANNELS channels x 16 lanes (N <= 16)
// walking the channel groups blockIdx.x, blockIdx.x + gridDim.x, ... Grid (G, nch, B).
template <typename T>
__device__ void scan_bwd(const T* __restrict__ x, const T* __restrict__ dt,
                         const float* __restrict__ rest, const T* __restrict__ grad,
                         float* starts, const float* __restrict__ dends, T* __restrict__ gx,
                         T* __restrict__ gdt, float* __restrict__ grest, int B, int L, int D,
                         int N, int nch) {
  constexpr int WARPS = BWD_CHANNELS * 16 / 32;
  __shared__ float red[WARPS][SUB][16][2];
  __shared__ float acc[BWD_CHUNK][16][2];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, n = tid & 15;
  const int c = blockIdx.y, bb = blockIdx.z;
  const int t0 = c * BWD_CHUNK, t1 = min(L, t0 + BWD_CHUNK);
  const float* bm = rest + (size_t)D * N + (size_t)B * D * N;
  const float* cm = bm + (size_t)B * L * N;
  float* gbm = grest + (size_t)D * N + (size_t)B * D * N;
  float* gcm = gbm + (size_t)B * L * N;
  for (int idx = tid; idx < BWD_CHUNK * 16 * 2; idx += blockDim.x) (&acc[0][0][0])[idx] = 0.f;
  const int groups = (D + BWD_CHANNELS - 1) / BWD_CHANNELS;
  for (int grp = blockIdx.x; grp < groups; grp += gridDim.x) {
    const int d = grp * BWD_CHANNELS + (tid >> 4);
    const bool okd = d < D, ok = okd && n < N;
    const float av = ok ? rest[(size_t)d * N + n] : 0.f, a2 = av * LOG2E;
    const size_t so = (((size_t)bb * nch + c) * D + d) * N + n;
    float h = ok ? starts[so] : 0.f, dh = ok ? dends[so] : 0.f;

    // Pass A: the state at the start of every sub-chunk. Each sub-chunk's inputs are loaded
    // into registers at once (zeros past the end: dt = 0 leaves the state as it is).
    float ckpt[NSUB];
    for (int k = 0; k < NSUB; k++) {
      const int base = t0 + k * SUB;
      float us[SUB], ds[SUB], bs[SUB];
#pragma unroll
      for (int j = 0; j < SUB; j++) {
        const int t = base + j;
        const bool v = ok && t < t1;
        const size_t row = ((size_t)bb * L + t) * D + d;
        ds[j] = v ? ld(dt + row) : 0.f;
        us[j] = v ? ds[j] * ld(x + row) : 0.f;
        bs[j] = v ? bm[((size_t)bb * L + t) * N + n] : 0.f;
      }
      ckpt[k] = h;
#pragma unroll
      for (int j = 0; j < SUB; j++) h = ex2(ds[j] * a2) * h + us[j] * bs[j];
    }

    // Pass B: sub-chunks in reverse.
    float ga = 0.f;
    for (int k = NSUB - 1; k >= 0; k--) {
      const int base = t0 + k * SUB;
      if (base >= t1) continue;  // the same for the whole block
      float us[SUB], ds[SUB], bs[SUB], cs[SUB], gs[SUB];
#pragma unroll
      for (int j = 0; j < SUB; j++) {
        const int t = base + j;
        const bool v = ok && t < t1;
        const size_t row = ((size_t)bb * L + t) * D + d;
        const size_t bn = ((size_t)bb * L + t) * N + n;
        ds[j] = v ? ld(dt + row) : 0.f;
        us[j] = v ? ds[j] * ld(x + row) : 0.f;
        gs[j] = v ? ld(grad + row) : 0.f;
        bs[j] = v ? bm[bn] : 0.f;
        cs[j] = v ? cm[bn] : 0.f;
      }
      float hs[SUB + 1], gu[SUB], gd[SUB];
      hs[0] = ckpt[k];
#pragma unroll
      for (int j = 0; j < SUB; j++) hs[j + 1] = ex2(ds[j] * a2) * hs[j] + us[j] * bs[j];
      // Past the end every input is zero: the gradients stay zero there but gd, which is only
      // written for steps before the end.
#pragma unroll
      for (int j = SUB - 1; j >= 0; j--) {
        const float dhi = dh + gs[j] * cs[j];
        float gc = gs[j] * hs[j + 1];
        float gb = dhi * us[j];
        gu[j] = dhi * bs[j];
        const float e = ex2(ds[j] * a2);  // recomputed: registers are the limit here
        const float ge = dhi * hs[j] * e;
        gd[j] = ge * av;
        ga += ge * ds[j];
        dh = dhi * e;
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
        acc[k * SUB + j][nn][w] += s;
      }
      __syncthreads();
    }
    if (ok) starts[so] = ga;
  }
  for (int idx = tid; idx < BWD_CHUNK * 16 * 2; idx += blockDim.x) {
    const int j = idx >> 5, nn = (idx >> 1) & 15, w = idx & 1;
    const int t = t0 + j;
    if (t < t1 && nn < N) atomicAdd((w ? gcm : gbm) + ((size_t)bb * L + t) * N + nn, acc[j][nn][w]);
  }
}

// Backward (4'): the gradient of a, summing the per-(batch, chunk) parts that scan_bwd left in
// `part` (B * nch, D, N). Thread (i, s) sums parts s, s + S, ... of element i and adds the sum
// into grest (zeroed). Grid (ceil(D * N / 256), S).
extern "C" __global__ void scan_ga_reduce(const float* part, float* grest, int D, int N,
                                          int parts) {
  const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (size_t)D * N) return;
  float s = 0.f;
  for (int p = blockIdx.y; p < parts; p += gridDim.y) s += part[(size_t)p * D * N + i];
  atomicAdd(grest + i, s);
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
  extern "C" __global__ void __launch_bounds__(BWD_CHANNELS * 16, 2)                           \
      scan_bwd_##NAME(const T* x, const T* dt, const float* rest, const T* grad,               \
                      float* starts, const float* dends, T* gx, T* gdt, float* grest,          \
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
