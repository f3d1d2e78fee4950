// Multi-head attention of queries over notes, for inference on a GPU (the CPU loop of
// `cpu::note_attention` as a kernel): as candle ops it is a dozen launches over (R, H, S, V)
// tensors (head reshapes, masks, the log-score bias, softmax, the weighted sum).
//
//   q (R, S, n); notes (R, V, 2n + 1) = [keys (n) | values (n) | log-score] per note;
//   visible (R, S, V) of 0 or 1; out (R, S, n); weights (R, H, S, V) when `want_weights`.
//
// Per head h of width dh = n / H, a query s of row r reads
//   softmax over the visible v of (q_s . k_v[h] * scale + ls_v), weighted sum of v_v[h],
// and zeros when it sees no note. One block per (row, head), one thread per query (the block's
// queries in turns of blockDim.x <= ATT_THREADS). The notes go through shared memory in tiles of
// ATT_TILE: the block loads a tile's keys, values and log-scores for its head, and its queries'
// visibility flags, with coalesced reads, then each thread runs an online softmax (running max
// and sum) over the tile from shared memory. Reading them from global memory in every thread,
// the visibility rows strided by V between threads, took 20x as long. The weights, when asked
// for, take a second pass over the tiles.
#include "common.cuh"

#define ATT_THREADS 128
#define ATT_TILE 64

// MAX_DH: the widest head the registers hold; EXACT: every head is MAX_DH wide, so that the
// loops over a head's width have a fixed trip count (dh 16 in a loop unrolled to 64 and
// predicated issued four times the instructions).
template <int MAX_DH, bool EXACT>
__device__ void note_attention(const float* __restrict__ q, const float* __restrict__ notes,
                               const float* __restrict__ visible, float* __restrict__ out,
                               float* __restrict__ weights, int S, int V, int n, int H,
                               float scale, int want_weights) {
  __shared__ float keys[ATT_TILE * MAX_DH], vals[ATT_TILE * MAX_DH], ls[ATT_TILE];
  // Padded rows: thread s reads row s, and a stride of ATT_TILE + 1 bytes spreads them over banks.
  __shared__ unsigned char vis[ATT_THREADS * (ATT_TILE + 1)];
  const int r = blockIdx.x, h = blockIdx.y, tid = threadIdx.x, nt = blockDim.x;
  const int dh = EXACT ? MAX_DH : n / H;
  const int width = 2 * n + 1;
  const float* rows = notes + (size_t)r * V * width;
  for (int s0 = 0; s0 < S; s0 += nt) {
    const int s = s0 + tid, queries = min(nt, S - s0);
    const bool active = s < S;
    float qv[MAX_DH], acc[MAX_DH];
#pragma unroll
    for (int j = 0; j < MAX_DH; j++) {
      qv[j] = active && j < dh ? q[((size_t)r * S + s) * n + h * dh + j] * scale : 0.f;
      acc[j] = 0.f;
    }
    float m = -INFINITY, sum = 0.f;
    // Loads the notes v0.. of one tile (`len` of them) and the block's visibility flags for them.
    auto load = [&](int v0, int len) {
      __syncthreads();
      for (int i = tid; i < len * dh; i += nt) {
        const float* note = rows + (size_t)(v0 + i / dh) * width + h * dh + i % dh;
        keys[i] = note[0];
        vals[i] = note[n];
      }
      for (int i = tid; i < len; i += nt) ls[i] = rows[(size_t)(v0 + i) * width + 2 * n];
      for (int i = tid; i < queries * len; i += nt) {
        const int row = i / len, col = i % len;
        vis[row * (ATT_TILE + 1) + col] =
            visible[((size_t)r * S + s0 + row) * V + v0 + col] != 0.f;
      }
      __syncthreads();
    };
    auto logit = [&](int v) {
      float x = ls[v];
#pragma unroll
      for (int j = 0; j < MAX_DH; j++)
        if (EXACT || j < dh) x += qv[j] * keys[v * dh + j];
      return x;
    };
    for (int v0 = 0; v0 < V; v0 += ATT_TILE) {
      const int len = min(ATT_TILE, V - v0);
      load(v0, len);
      if (!active) continue;
      for (int v = 0; v < len; v++) {
        if (!vis[tid * (ATT_TILE + 1) + v]) continue;
        const float x = logit(v);
        const float m_new = fmaxf(m, x);
        const float shrink = expf(m - m_new), e = expf(x - m_new);
        sum = sum * shrink + e;
#pragma unroll
        for (int j = 0; j < MAX_DH; j++)
          if (EXACT || j < dh) acc[j] = acc[j] * shrink + e * vals[v * dh + j];
        m = m_new;
      }
    }
    const float inv = sum > 0.f ? 1.f / sum : 0.f;
    if (active) {
      float* os = out + ((size_t)r * S + s) * n + h * dh;
#pragma unroll
      for (int j = 0; j < MAX_DH; j++)
        if (EXACT || j < dh) os[j] = acc[j] * inv;
    }
    if (!want_weights) continue;
    for (int v0 = 0; v0 < V; v0 += ATT_TILE) {
      const int len = min(ATT_TILE, V - v0);
      load(v0, len);
      if (!active) continue;
      float* ws = weights + (((size_t)r * H + h) * S + s) * V + v0;
      for (int v = 0; v < len; v++)
        ws[v] = vis[tid * (ATT_TILE + 1) + v] ? expf(logit(v) - m) * inv : 0.f;
    }
  }
}

#define NOTE_ATTENTION(NAME, MAX_DH, EXACT)                                                    \
  extern "C" __global__ void NAME(const float* __restrict__ q, const float* __restrict__ notes, \
                                  const float* __restrict__ visible, float* __restrict__ out,   \
                                  float* __restrict__ weights, int S, int V, int n, int H,      \
                                  float scale, int want_weights) {                              \
    note_attention<MAX_DH, EXACT>(q, notes, visible, out, weights, S, V, n, H, scale,          \
                                  want_weights);                                                \
  }

// Heads of exactly 16, 32 or 64, and any other width up to 64.
NOTE_ATTENTION(note_attention_f32_dh16, 16, true)
NOTE_ATTENTION(note_attention_f32_dh32, 32, true)
NOTE_ATTENTION(note_attention_f32_dh64, 64, true)
NOTE_ATTENTION(note_attention_f32, 64, false)
