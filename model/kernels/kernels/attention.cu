// Multi-head attention of queries over notes, for inference on a GPU (the CPU loop of
// `cpu::note_attention` as a kernel): as candle ops it is a dozen launches over (R, H, S, V)
// tensors (head reshapes, masks, the log-score bias, softmax, the weighted sum).
//
//   q (R, S, n); notes (R, V, 2n + 1) = [keys (n) | values (n) | log-score] per note;
//   visible (R, S, V) of 0 or 1; out (R, S, n); weights (R, H, S, V) when `want_weights`.
//
// Per head h of width dh = n / H, a query s of row r reads
//   softmax over the visible v of (q_s . k_v[h] * scale + ls_v), weighted sum of v_v[h],
// and zeros when it sees no note. One block per (row, head), one thread per query (strided);
// keys and values are read from global memory by every thread of the block alike, which the
// cache serves. An online softmax (running max and sum) needs one pass; the weights, when asked
// for, take a second.
#include "common.cuh"

#define ATT_MAX_DH 64

extern "C" __global__ void note_attention_f32(const float* __restrict__ q,
                                              const float* __restrict__ notes,
                                              const float* __restrict__ visible,
                                              float* __restrict__ out, float* __restrict__ weights,
                                              int S, int V, int n, int H, float scale,
                                              int want_weights) {
  const int r = blockIdx.x, h = blockIdx.y, dh = n / H;
  const int width = 2 * n + 1;
  const float* rows = notes + (size_t)r * V * width;
  for (int s = threadIdx.x; s < S; s += blockDim.x) {
    const float* qs = q + ((size_t)r * S + s) * n + h * dh;
    const float* vis = visible + ((size_t)r * S + s) * V;
    float qv[ATT_MAX_DH], acc[ATT_MAX_DH];
#pragma unroll
    for (int j = 0; j < ATT_MAX_DH; j++) {
      qv[j] = j < dh ? qs[j] * scale : 0.f;
      acc[j] = 0.f;
    }
    float m = -INFINITY, sum = 0.f;
    for (int v = 0; v < V; v++) {
      if (vis[v] == 0.f) continue;
      const float* note = rows + (size_t)v * width;
      float logit = note[2 * n];
#pragma unroll
      for (int j = 0; j < ATT_MAX_DH; j++)
        if (j < dh) logit += qv[j] * note[h * dh + j];
      const float m_new = fmaxf(m, logit);
      const float shrink = expf(m - m_new), e = expf(logit - m_new);
      sum = sum * shrink + e;
#pragma unroll
      for (int j = 0; j < ATT_MAX_DH; j++)
        if (j < dh) acc[j] = acc[j] * shrink + e * note[n + h * dh + j];
      m = m_new;
    }
    const float inv = sum > 0.f ? 1.f / sum : 0.f;
    float* os = out + ((size_t)r * S + s) * n + h * dh;
#pragma unroll
    for (int j = 0; j < ATT_MAX_DH; j++)
      if (j < dh) os[j] = acc[j] * inv;
    if (!want_weights) continue;
    float* ws = weights + (((size_t)r * H + h) * S + s) * V;
    for (int v = 0; v < V; v++) {
      float w = 0.f;
      if (vis[v] != 0.f) {
        const float* note = rows + (size_t)v * width;
        float logit = note[2 * n];
#pragma unroll
        for (int j = 0; j < ATT_MAX_DH; j++)
          if (j < dh) logit += qv[j] * note[h * dh + j];
        w = expf(logit - m) * inv;
      }
      ws[v] = w;
    }
  }
}
