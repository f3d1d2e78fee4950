// Helpers shared by the kernels: dtype conversion (inputs in f32, bf16 or f16; arithmetic in f32)
// and a fast base-2 exponential.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#define LOG2E 1.4426950408889634f
#define FULL_MASK 0xffffffffu

// 2^x with the hardware approximation (relative error ~2^-22; flushes denormals to zero).
__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ float ld(const float* p) { return __ldg(p); }
__device__ __forceinline__ float ld(const __nv_bfloat16* p) { return __bfloat162float(__ldg(p)); }
__device__ __forceinline__ float ld(const __half* p) { return __half2float(__ldg(p)); }

__device__ __forceinline__ void st(float* p, float v) { *p = v; }
__device__ __forceinline__ void st(__nv_bfloat16* p, float v) { *p = __float2bfloat16(v); }
__device__ __forceinline__ void st(__half* p, float v) { *p = __float2half(v); }
