// Backward of gathering rows of a table (`ops::gather_rows`): every gathered row's gradient is
// added to the row it was read from, out[index[m], :] += grad[m, :]. One thread per element of
// grad, grid-stride; rows read more than once (a note kept in the pool over many chunks) meet
// in atomicAdd. `out` (R, W) starts zeroed; an index outside [0, R) adds nothing (the forward
// refused it already).
#include "common.cuh"

extern "C" __global__ void scatter_add_rows_f32(const float* __restrict__ grad,
                                                const uint32_t* __restrict__ index,
                                                float* __restrict__ out, size_t n, int W, int R) {
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x) {
    const size_t m = i / W;
    const uint32_t r = index[m];
    if (r < (uint32_t)R) atomicAdd(out + (size_t)r * W + (i - m * W), grad[i]);
  }
}
