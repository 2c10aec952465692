// qwq's CPU weight-only GEMMs: y[M, N] = x[M, K] . W[N, K]^T for int8 and int4 weights and a few rows M.
//
// Numerics (llama.cpp's scheme for quantized dot products, plus an optional second term): each activation row is
// quantized per group of 32 inputs to int8 codes q1 = round(x / s1), s1 = absmax / 127; with two terms the residual
// is quantized too, q2 = round((x - s1 q1) / u), u = s1 / 254, so that x ~ u * (254 q1 + q2) to ~1/64,000 of the
// group's absmax (finer than bf16). The weight codes are unsigned bytes, so one AVX-512 VNNI instruction (vpdpbusd:
// u8 x s8 -> s32, 64 products) does the multiply-adds of 16 outputs x 4 inputs. Integer sums are exact (254 * d1 + d2
// too), and the float accumulation over groups runs in the same order for a row whatever the other rows are, so a
// row's output is bit-identical at any M and any position in the batch (the engine's batch invariance rests on
// this). Work is split over output blocks only, never over K, for the same reason.
//
// Packed layouts (built by qwq/engine/kernels/layout.py; NB = ceil(N / 16) blocks of 16 outputs):
//   int8  codes u8 [NB][K/4][16][4], byte = w + 128 for int8 w; scales fp32 [NB * 16] (per output)
//         y = scale * sum_groups unit * (sum_k xq * (w + 128) - 128 * sum_k xq)
//   int4  codes u8 [NB][K/8][16][4]: low nibble = q[n, 8j + b], high nibble = q[n, 8j + 4 + b] (q in 0..15);
//         scale/zero bf16 [NB][K/G][2][16], w = (q - 8) * s + z, so per group of 32 inputs
//         y += (unit * s) * sum_k xq * q + (unit * sum_k xq) * (z - 8 s)
// (xq = q1 with one term, 254 q1 + q2 with two; unit = s1 or u.) Each weight byte is read from memory once per call
// for up to 64 rows: tiles of up to 8 rows pass over one block of 16 outputs while it sits in L1/L2.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "wo_gemm.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace {

constexpr int kGroup = 32;            // activation quantization group
constexpr int kBlockN = 16;           // outputs per zmm
constexpr int kMaxTile = 8;           // rows per register tile
constexpr int64_t kPanelRows = 64;    // rows per pass over the weights
constexpr int kSecondTermRatio = 254;

struct QuantizedRows {
  at::Tensor codes;     // int8 [M, terms, K]
  at::Tensor unit;      // fp32 [M, K/32]: the value of one step of the combined integer code
  at::Tensor sums;      // int32 [M, terms, K/32]: sum of each term's codes per group
  at::Tensor unit_sum;  // fp32 [M, K/32]: unit * sum of the combined codes (the group's sum of activations)
};

inline __m512i quantize16(__m512 v, __m512 inv) {
  const __m512i limit = _mm512_set1_epi32(127);
  return _mm512_min_epi32(limit, _mm512_max_epi32(_mm512_sub_epi32(_mm512_setzero_si512(), limit),
                                                  _mm512_cvtps_epi32(_mm512_mul_ps(v, inv))));  // nearest-even
}

QuantizedRows quantize_rows(const at::Tensor& x, int terms) {
  const int64_t rows = x.size(0), width = x.size(1), groups = width / kGroup;
  const auto as_float = x.options(), as_int = x.options().dtype(at::kInt);
  QuantizedRows out{at::empty({rows, terms, width}, x.options().dtype(at::kChar)), at::empty({rows, groups}, as_float),
                    at::empty({rows, terms, groups}, as_int), at::empty({rows, groups}, as_float)};
  const float* src = x.data_ptr<float>();
  int8_t* codes = out.codes.data_ptr<int8_t>();
  float* unit = out.unit.data_ptr<float>();
  int32_t* sums = out.sums.data_ptr<int32_t>();
  float* unit_sum = out.unit_sum.data_ptr<float>();
  const __m512 magnitude = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const float* v = src + r * width + g * kGroup;
      int8_t* c1 = codes + r * terms * width + g * kGroup;
      int32_t* s1 = sums + r * terms * groups + g;
      const int64_t i = r * groups + g;
      __m512 a = _mm512_loadu_ps(v), b = _mm512_loadu_ps(v + 16);
      const float absmax =
          _mm512_reduce_max_ps(_mm512_max_ps(_mm512_and_ps(a, magnitude), _mm512_and_ps(b, magnitude)));
      if (!(absmax > 0.0f) || std::isinf(absmax)) {  // zeros; a NaN / inf group makes its outputs NaN
        for (int t = 0; t < terms; ++t) {
          std::memset(c1 + t * width, 0, kGroup);
          s1[t * groups] = 0;
        }
        unit[i] = absmax == 0.0f ? 0.0f : NAN;
        unit_sum[i] = unit[i];
        continue;
      }
      const float step1 = absmax / 127.0f;
      __m512i qa = quantize16(a, _mm512_set1_ps(127.0f / absmax));
      __m512i qb = quantize16(b, _mm512_set1_ps(127.0f / absmax));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(c1), _mm512_cvtepi32_epi8(qa));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(c1 + 16), _mm512_cvtepi32_epi8(qb));
      const int32_t sum1 = _mm512_reduce_add_epi32(_mm512_add_epi32(qa, qb));
      s1[0] = sum1;
      if (terms == 1) {
        unit[i] = step1;
        unit_sum[i] = step1 * static_cast<float>(sum1);
        continue;
      }
      const float step2 = step1 / static_cast<float>(kSecondTermRatio);
      const __m512 s1v = _mm512_set1_ps(step1);
      a = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(qa), s1v, a);  // residual x - s1 q1 (one rounding)
      b = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(qb), s1v, b);
      qa = quantize16(a, _mm512_set1_ps(1.0f / step2));
      qb = quantize16(b, _mm512_set1_ps(1.0f / step2));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(c1 + width), _mm512_cvtepi32_epi8(qa));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(c1 + width + 16), _mm512_cvtepi32_epi8(qb));
      const int32_t sum2 = _mm512_reduce_add_epi32(_mm512_add_epi32(qa, qb));
      s1[groups] = sum2;
      unit[i] = step2;
      unit_sum[i] = step2 * static_cast<float>(kSecondTermRatio * sum1 + sum2);
    }
  }
  return out;
}

inline __m512 bf16x16_to_fp32(const uint16_t* p) {
  return _mm512_castsi512_ps(
      _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
}

inline __m512i broadcast4(const int8_t* p) {
  int32_t four;
  std::memcpy(&four, p, 4);
  return _mm512_set1_epi32(four);
}

// acc += w (u8) . the 4 activation bytes at x4 broadcast to every lane: the broadcast folded into the instruction's
// memory operand ({1to16}), which the compiler does not do for _mm512_set1_epi32 (a separate vpbroadcastd per use).
inline __m512i dpbusd_broadcast(__m512i acc, __m512i w, const int8_t* x4) {
  asm("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(w), "m"(*reinterpret_cast<const int32_t*>(x4)));
  return acc;
}

inline void store_outputs(float* y, __m512 v, int valid) {
  if (valid == kBlockN) {
    _mm512_storeu_ps(y, v);
  } else {
    _mm512_mask_storeu_ps(y, static_cast<__mmask16>((1u << valid) - 1u), v);
  }
}

// Rows of activations for a tile: codes of row 0 (rows `row_stride` bytes apart, terms `width` apart), per-group
// arrays of row 0 (`groups` apart; sums: `terms * groups` apart, terms `groups` apart).
struct RowTile {
  const int8_t* codes;
  const float* unit;
  const int32_t* sums;
  const float* unit_sum;
  int64_t width, groups;
};

// Integer dot products of a tile: chains per row = terms x splits; with few rows each term is split over two chains
// (alternate steps) to hide the VNNI latency. Integer sums are exact, so the split changes no result.
template <int MT, int T>
struct Dots {
  static constexpr int kSplits = MT <= 4 ? 2 : 1;
  __m512i d[MT][T][kSplits];

  inline void zero() {
    for (int r = 0; r < MT; ++r)
      for (int t = 0; t < T; ++t)
        for (int s = 0; s < kSplits; ++s) d[r][t][s] = _mm512_setzero_si512();
  }
  inline void add(int r, int t, int step, __m512i w, const int8_t* x4) {
    const int s = kSplits == 2 ? (step & 1) : 0;
    d[r][t][s] = dpbusd_broadcast(d[r][t][s], w, x4);
  }
  // The row's combined sum: d0 with one term, 254 * d0 + d1 with two (fits int32: |d0| < 32 * 255 * 127).
  inline __m512i combined(int r) const {
    __m512i term[T];
    for (int t = 0; t < T; ++t) term[t] = kSplits == 2 ? _mm512_add_epi32(d[r][t][0], d[r][t][1]) : d[r][t][0];
    if constexpr (T == 2) {
      return _mm512_add_epi32(_mm512_mullo_epi32(term[0], _mm512_set1_epi32(kSecondTermRatio)), term[1]);
    } else {
      return term[0];
    }
  }
};

template <int MT, int T>
void int8_block(const uint8_t* w, const float* col_scale, const RowTile& x, float* y, int64_t ldy, int valid) {
  using D = Dots<MT, T>;
  const int64_t row_stride = T * x.width;
  __m512 acc[MT];
  for (int r = 0; r < MT; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t g = 0; g < x.groups; ++g) {
    D dots;
    dots.zero();
    for (int r = 0; r < MT; ++r)  // the -128 * sum(codes) correction for the +128 bias of the weight bytes
      for (int t = 0; t < T; ++t) dots.d[r][t][0] = _mm512_set1_epi32(-128 * x.sums[(r * T + t) * x.groups + g]);
    const uint8_t* wg = w + g * (kGroup * kBlockN);
#pragma GCC unroll 8  // the chain index (step & 1) must be a constant: registers, not a stack array
    for (int step = 0; step < kGroup / 4; ++step) {
      const __m512i wt = _mm512_loadu_si512(wg + step * 64);
      for (int r = 0; r < MT; ++r)
        for (int t = 0; t < T; ++t)
          dots.add(r, t, step, wt, x.codes + r * row_stride + t * x.width + g * kGroup + 4 * step);
    }
    for (int r = 0; r < MT; ++r)
      acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(x.unit[r * x.groups + g]), _mm512_cvtepi32_ps(dots.combined(r)), acc[r]);
  }
  const __m512 cs = _mm512_loadu_ps(col_scale);
  for (int r = 0; r < MT; ++r) store_outputs(y + r * ldy, _mm512_mul_ps(acc[r], cs), valid);
}

template <int MT, int T>
void int4_block(const uint8_t* w, const uint16_t* sz, int64_t group_size, const RowTile& x, float* y, int64_t ldy,
                int valid) {
  using D = Dots<MT, T>;
  const int64_t row_stride = T * x.width, per_weight_group = group_size / kGroup;
  const __m512i nibble = _mm512_set1_epi8(0x0F);
  __m512 acc[MT];
  for (int r = 0; r < MT; ++r) acc[r] = _mm512_setzero_ps();
  __m512 s = _mm512_setzero_ps(), m = _mm512_setzero_ps();
  for (int64_t g = 0; g < x.groups; ++g) {
    if (g % per_weight_group == 0) {
      const uint16_t* p = sz + (g / per_weight_group) * (2 * kBlockN);
      s = bf16x16_to_fp32(p);
      m = _mm512_fmadd_ps(_mm512_set1_ps(-8.0f), s, bf16x16_to_fp32(p + kBlockN));  // z - 8 s
    }
    D dots;
    dots.zero();
    const uint8_t* wg = w + g * (kGroup / 2 * kBlockN);
#pragma GCC unroll 4
    for (int j = 0; j < kGroup / 8; ++j) {
      const __m512i v = _mm512_loadu_si512(wg + j * 64);
      const __m512i lo = _mm512_and_si512(v, nibble), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nibble);
      for (int r = 0; r < MT; ++r) {
        for (int t = 0; t < T; ++t) {
          const int8_t* xr = x.codes + r * row_stride + t * x.width + g * kGroup + 8 * j;
          dots.add(r, t, 0, lo, xr);
          dots.add(r, t, 1, hi, xr + 4);
        }
      }
    }
    for (int r = 0; r < MT; ++r) {
      acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(s, _mm512_set1_ps(x.unit[r * x.groups + g])),
                               _mm512_cvtepi32_ps(dots.combined(r)), acc[r]);
      acc[r] = _mm512_fmadd_ps(m, _mm512_set1_ps(x.unit_sum[r * x.groups + g]), acc[r]);
    }
  }
  for (int r = 0; r < MT; ++r) store_outputs(y + r * ldy, acc[r], valid);
}

// Rows in tiles of up to 8 (the register tile), tiles in panels of 64 rows: each panel's pass reads every weight
// byte from memory once, and the panel's quantized activations stay in L2 for all output blocks.
template <typename Tile>
void for_blocks_and_rows(int64_t blocks, int64_t rows, int64_t grain, Tile&& tile) {
  for (int64_t p0 = 0; p0 < rows; p0 += kPanelRows) {
    const int64_t p1 = std::min(rows, p0 + kPanelRows);
    at::parallel_for(0, blocks, grain, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        for (int64_t r0 = p0; r0 < p1; r0 += kMaxTile) {
          switch (std::min<int64_t>(kMaxTile, p1 - r0)) {
            case 1: tile(std::integral_constant<int, 1>{}, b, r0); break;
            case 2: tile(std::integral_constant<int, 2>{}, b, r0); break;
            case 3: tile(std::integral_constant<int, 3>{}, b, r0); break;
            case 4: tile(std::integral_constant<int, 4>{}, b, r0); break;
            case 5: tile(std::integral_constant<int, 5>{}, b, r0); break;
            case 6: tile(std::integral_constant<int, 6>{}, b, r0); break;
            case 7: tile(std::integral_constant<int, 7>{}, b, r0); break;
            default: tile(std::integral_constant<int, 8>{}, b, r0); break;
          }
        }
      }
    });
  }
}

at::Tensor float_rows(const at::Tensor& x, int64_t width, int64_t terms, const char* op) {
  TORCH_CHECK(x.dim() == 2 && x.size(1) == width, op, ": x must be [M, ", width, "], got ", x.sizes());
  TORCH_CHECK(x.device().is_cpu(), op, ": CPU tensors only");
  TORCH_CHECK(width % kGroup == 0, op, ": K must be a multiple of ", kGroup, ", got ", width);
  TORCH_CHECK(terms == 1 || terms == 2, op, ": terms must be 1 or 2, got ", terms);
  return x.to(at::kFloat).contiguous();
}

RowTile tile_at(const QuantizedRows& q, int64_t r0, int64_t width, int terms) {
  const int64_t groups = width / kGroup;
  return RowTile{q.codes.data_ptr<int8_t>() + r0 * terms * width, q.unit.data_ptr<float>() + r0 * groups,
                 q.sums.data_ptr<int32_t>() + r0 * terms * groups, q.unit_sum.data_ptr<float>() + r0 * groups,
                 width, groups};
}

// Blocks per parallel task: enough work per task to amortize scheduling (~64 KB of weight).
int64_t grain_for(int64_t block_bytes) { return std::max<int64_t>(1, (64 << 10) / std::max<int64_t>(1, block_bytes)); }

void check_blocks(const at::Tensor& codes, int64_t n, int64_t inputs_per_row, const char* op) {
  TORCH_CHECK(codes.dtype() == at::kByte && codes.dim() == 4 && codes.size(2) == kBlockN && codes.size(3) == 4 &&
                  codes.is_contiguous(), op, ": codes must be packed uint8 [NB, K/", inputs_per_row, ", 16, 4]");
  const int64_t blocks = codes.size(0);
  TORCH_CHECK(n > (blocks - 1) * kBlockN && n <= blocks * kBlockN, op, ": N=", n, " does not fit ", blocks,
              " blocks of 16");
}

}  // namespace

namespace qwq {

at::Tensor int8_gemm(const at::Tensor& x_in, const at::Tensor& codes, const at::Tensor& scales, int64_t n,
                     int64_t terms) {
  check_blocks(codes, n, 4, "int8_gemm");
  const int64_t blocks = codes.size(0), width = codes.size(1) * 4;
  TORCH_CHECK(scales.dtype() == at::kFloat && scales.numel() == blocks * kBlockN && scales.is_contiguous(),
              "int8_gemm: scales must be fp32 [NB * 16]");
  const at::Tensor x = float_rows(x_in, width, terms, "int8_gemm");
  const int64_t rows = x.size(0);
  at::Tensor y = at::empty({rows, n}, x.options());
  if (rows == 0) return y;
  const QuantizedRows q = quantize_rows(x, static_cast<int>(terms));
  const uint8_t* w = codes.data_ptr<uint8_t>();
  const float* cs = scales.data_ptr<float>();
  float* out = y.data_ptr<float>();
  const int64_t block_bytes = width * kBlockN;
  for_blocks_and_rows(blocks, rows, grain_for(block_bytes), [&](auto tile, int64_t b, int64_t r0) {
    constexpr int MT = decltype(tile)::value;
    const int valid = static_cast<int>(std::min<int64_t>(kBlockN, n - b * kBlockN));
    const RowTile xt = tile_at(q, r0, width, static_cast<int>(terms));
    float* yb = out + r0 * n + b * kBlockN;
    if (terms == 2) {
      int8_block<MT, 2>(w + b * block_bytes, cs + b * kBlockN, xt, yb, n, valid);
    } else {
      int8_block<MT, 1>(w + b * block_bytes, cs + b * kBlockN, xt, yb, n, valid);
    }
  });
  return y;
}

at::Tensor int4_gemm(const at::Tensor& x_in, const at::Tensor& codes, const at::Tensor& scale_zeros, int64_t n,
                     int64_t group_size, int64_t terms) {
  check_blocks(codes, n, 8, "int4_gemm");
  const int64_t blocks = codes.size(0), width = codes.size(1) * 8;
  TORCH_CHECK(group_size % kGroup == 0 && width % group_size == 0, "int4_gemm: group size ", group_size,
              " must be a multiple of 32 dividing K=", width);
  TORCH_CHECK(scale_zeros.dtype() == at::kBFloat16 && scale_zeros.is_contiguous() &&
                  scale_zeros.numel() == blocks * (width / group_size) * 2 * kBlockN,
              "int4_gemm: scale_zeros must be bf16 [NB, K/G, 2, 16]");
  const at::Tensor x = float_rows(x_in, width, terms, "int4_gemm");
  const int64_t rows = x.size(0);
  at::Tensor y = at::empty({rows, n}, x.options());
  if (rows == 0) return y;
  const QuantizedRows q = quantize_rows(x, static_cast<int>(terms));
  const uint8_t* w = codes.data_ptr<uint8_t>();
  const uint16_t* sz = reinterpret_cast<const uint16_t*>(scale_zeros.data_ptr<at::BFloat16>());
  float* out = y.data_ptr<float>();
  const int64_t block_bytes = width / 2 * kBlockN, block_scales = (width / group_size) * 2 * kBlockN;
  for_blocks_and_rows(blocks, rows, grain_for(block_bytes), [&](auto tile, int64_t b, int64_t r0) {
    constexpr int MT = decltype(tile)::value;
    const int valid = static_cast<int>(std::min<int64_t>(kBlockN, n - b * kBlockN));
    const RowTile xt = tile_at(q, r0, width, static_cast<int>(terms));
    float* yb = out + r0 * n + b * kBlockN;
    if (terms == 2) {
      int4_block<MT, 2>(w + b * block_bytes, sz + b * block_scales, group_size, xt, yb, n, valid);
    } else {
      int4_block<MT, 1>(w + b * block_bytes, sz + b * block_scales, group_size, xt, yb, n, valid);
    }
  });
  return y;
}

}  // namespace qwq

TORCH_LIBRARY(qwq_kernels, m) {
  m.def("int8_gemm(Tensor x, Tensor codes, Tensor scales, int n, int terms) -> Tensor");
  m.def("int4_gemm(Tensor x, Tensor codes, Tensor scale_zeros, int n, int group_size, int terms) -> Tensor");
}

TORCH_LIBRARY_IMPL(qwq_kernels, CPU, m) {
  m.impl("int8_gemm", &qwq::int8_gemm);
  m.impl("int4_gemm", &qwq::int4_gemm);
}
