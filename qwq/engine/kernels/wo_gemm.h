// The GEMMs of wo_gemm.cpp and bf16_gemm.cpp, for the other kernels of this extension (decode_layer.cpp).
#pragma once

#include <ATen/ATen.h>

namespace qwq {

// y [M, N] fp32 = x [M, K] . W^T for the packed int8 weight (codes [NB, K/4, 16, 4], scales fp32 [NB * 16]).
at::Tensor int8_gemm(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& scales, int64_t n,
                     int64_t terms);
// The same for the packed int4 weight (codes [NB, K/8, 16, 4], scale_zeros bf16 [NB, K/G, 2, 16]).
at::Tensor int4_gemm(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& scale_zeros, int64_t n,
                     int64_t group_size, int64_t terms);

// y [M, N] fp32 = x [M, K] . W^T for a bf16 weight packed [NB, K/2, 16, 2] (bf16_gemm.cpp; needs AVX512-BF16).
at::Tensor bf16_gemm(const at::Tensor& x, const at::Tensor& packed, int64_t n);

}  // namespace qwq
