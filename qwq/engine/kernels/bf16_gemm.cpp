// y[M, N] fp32 = x[M, K] . W[N, K]^T for a bf16 weight and a few rows M, on AVX512-BF16 (vdpbf16ps).
//
// Why not at::linear: at the shapes of a small model's decode step (M <= 64, K and N of a few hundred) oneDNN's
// per-call work (primitive lookup, scratch allocation, casting x to bf16 and y back to fp32 as separate ops) cost
// more than its multiply-adds (py-spy on the tiny model's 64-row step: ~2/3 of each at::linear call). Here a call is
// one pass over the packed weight.
//
// Numerics: x is rounded to bf16 (nearest-even), products of bf16 pairs accumulate in fp32 (the instruction adds
// two products to each lane), and y stays fp32 (at::linear on bf16 would round it to bf16). Each output accumulates
// its inputs in one fixed order whatever the tile it lands in and whatever M is: a row's output bits do not depend on
// the other rows. Work is split over output blocks only.
//
// Packed weight (qwq/engine/kernels/layout.py pack_bf16): bf16 [NB, K/2, 16, 2], NB = ceil(N / 16); within a block
// the 16 outputs x 2 consecutive inputs that one instruction multiplies are contiguous. Padding outputs are zero.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "wo_gemm.h"

#define QWQ_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

namespace {

constexpr int kBlockN = 16;
constexpr int kMaxTile = 6;       // rows per register tile (6 x 4 accumulators + 4 weight vectors + 1 input)
constexpr int kGroupBlocks = 4;   // blocks of 16 outputs per register tile
constexpr int64_t kPanelRows = 64;

// x [rows, width] fp32 -> bf16, round to nearest even (what at::Tensor.to(bfloat16) gives).
QWQ_BF16_TARGET void to_bf16(const float* x, uint16_t* out, int64_t count) {
  int64_t i = 0;
  for (; i + 16 <= count; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + i)));
  if (i < count) {
    const __mmask16 m = static_cast<__mmask16>((1u << (count - i)) - 1u);
    _mm256_mask_storeu_epi16(out + i, m, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

// MT rows x NT blocks of 16 outputs: MT * NT accumulators, one per (row, block), each summing its inputs in order
// (pair 0, 1, 2, ...). Every tile shape keeps that order, so a row's sums never depend on where it lands.
template <int MT, int NT>
QWQ_BF16_TARGET void bf16_tile(const uint16_t* w, int64_t block_stride, const uint32_t* x, int64_t pairs, float* y,
                               int64_t ldy, int64_t valid) {
  __m512 acc[MT][NT];
  for (int r = 0; r < MT; ++r)
    for (int b = 0; b < NT; ++b) acc[r][b] = _mm512_setzero_ps();
  for (int64_t p = 0; p < pairs; ++p) {
    __m512i wp[NT];
    for (int b = 0; b < NT; ++b) wp[b] = _mm512_loadu_si512(w + b * block_stride + p * 2 * kBlockN);
    for (int r = 0; r < MT; ++r) {
      const __m512bh xp = (__m512bh)_mm512_set1_epi32(static_cast<int>(x[r * pairs + p]));
      for (int b = 0; b < NT; ++b) acc[r][b] = _mm512_dpbf16_ps(acc[r][b], xp, (__m512bh)wp[b]);
    }
  }
  for (int b = 0; b < NT; ++b) {
    const int64_t left = valid - b * kBlockN;
    const __mmask16 m = left >= kBlockN ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
    for (int r = 0; r < MT; ++r) _mm512_mask_storeu_ps(y + r * ldy + b * kBlockN, m, acc[r][b]);
  }
}

struct Gemm {
  const uint16_t* w;
  const uint32_t* x;
  float* y;
  int64_t n, pairs;
};

template <int NT>
QWQ_BF16_TARGET void run_rows(const Gemm& g, int64_t b, int64_t row_begin, int64_t row_end) {
  const int64_t stride = g.pairs * 2 * kBlockN;
  const uint16_t* wb = g.w + b * stride;
  const int64_t valid = g.n - b * kBlockN;
  for (int64_t r0 = row_begin; r0 < row_end; r0 += kMaxTile) {
    const uint32_t* xr = g.x + r0 * g.pairs;
    float* yr = g.y + r0 * g.n + b * kBlockN;
    switch (std::min<int64_t>(kMaxTile, row_end - r0)) {
      case 1: bf16_tile<1, NT>(wb, stride, xr, g.pairs, yr, g.n, valid); break;
      case 2: bf16_tile<2, NT>(wb, stride, xr, g.pairs, yr, g.n, valid); break;
      case 3: bf16_tile<3, NT>(wb, stride, xr, g.pairs, yr, g.n, valid); break;
      case 4: bf16_tile<4, NT>(wb, stride, xr, g.pairs, yr, g.n, valid); break;
      case 5: bf16_tile<5, NT>(wb, stride, xr, g.pairs, yr, g.n, valid); break;
      default: bf16_tile<6, NT>(wb, stride, xr, g.pairs, yr, g.n, valid); break;
    }
  }
}

// Groups of up to kGroupBlocks blocks [group_begin, group_end) of the weight, every row in [row_begin, row_end).
QWQ_BF16_TARGET void run_groups(const Gemm& g, int64_t blocks, int64_t group_begin, int64_t group_end,
                                int64_t row_begin, int64_t row_end) {
  for (int64_t group = group_begin; group < group_end; ++group) {
    const int64_t b = group * kGroupBlocks;
    switch (std::min<int64_t>(kGroupBlocks, blocks - b)) {
      case 1: run_rows<1>(g, b, row_begin, row_end); break;
      case 2: run_rows<2>(g, b, row_begin, row_end); break;
      case 3: run_rows<3>(g, b, row_begin, row_end); break;
      default: run_rows<4>(g, b, row_begin, row_end); break;
    }
  }
}

bool cpu_has_bf16() {
  static const bool has = __builtin_cpu_supports("avx512bf16");
  return has;
}

bool bf16_gemm_supported() { return cpu_has_bf16(); }

}  // namespace

namespace qwq {

at::Tensor bf16_gemm(const at::Tensor& x_in, const at::Tensor& packed, int64_t n) {
  TORCH_CHECK(cpu_has_bf16(), "bf16_gemm: this CPU lacks AVX512-BF16");
  TORCH_CHECK(packed.scalar_type() == at::kBFloat16 && packed.dim() == 4 && packed.size(2) == kBlockN &&
                  packed.size(3) == 2 && packed.is_contiguous(),
              "bf16_gemm: the weight must be packed bf16 [NB, K/2, 16, 2], got ", packed.sizes(), " ",
              packed.scalar_type());
  const int64_t blocks = packed.size(0), pairs = packed.size(1), width = 2 * pairs;
  TORCH_CHECK(n > (blocks - 1) * kBlockN && n <= blocks * kBlockN, "bf16_gemm: N=", n, " does not fit ", blocks,
              " blocks of 16");
  TORCH_CHECK(x_in.dim() == 2 && x_in.size(1) == width && x_in.device().is_cpu(), "bf16_gemm: x must be [M, ",
              width, "] on the CPU, got ", x_in.sizes());
  const at::Tensor x = x_in.to(at::kFloat).contiguous();
  const int64_t rows = x.size(0);
  at::Tensor y = at::empty({rows, n}, x.options());
  if (rows == 0) return y;
  at::Tensor xb = at::empty({rows, width}, x.options().dtype(at::kBFloat16));
  to_bf16(x.data_ptr<float>(), reinterpret_cast<uint16_t*>(xb.data_ptr<at::BFloat16>()), rows * width);
  const Gemm g{reinterpret_cast<const uint16_t*>(packed.data_ptr<at::BFloat16>()),
               reinterpret_cast<const uint32_t*>(xb.data_ptr<at::BFloat16>()), y.data_ptr<float>(), n, pairs};
  const int64_t groups = (blocks + kGroupBlocks - 1) / kGroupBlocks;
  const int64_t grain = std::max<int64_t>(1, (64 << 10) / (width * 2 * kBlockN * kGroupBlocks));  // ~64 KB a task
  for (int64_t p0 = 0; p0 < rows; p0 += kPanelRows) {  // each panel reads the weight once; its rows stay in L2
    const int64_t p1 = std::min(rows, p0 + kPanelRows);
    at::parallel_for(0, groups, grain, [&](int64_t begin, int64_t end) { run_groups(g, blocks, begin, end, p0, p1); });
  }
  return y;
}

}  // namespace qwq

TORCH_LIBRARY_FRAGMENT(qwq_kernels, m) {
  m.def("bf16_gemm(Tensor x, Tensor packed, int n) -> Tensor");
  m.def("bf16_gemm_supported() -> bool", &bf16_gemm_supported);  // no tensor to dispatch on: one kernel for all
}

TORCH_LIBRARY_IMPL(qwq_kernels, CPU, m) { m.impl("bf16_gemm", &qwq::bf16_gemm); }
