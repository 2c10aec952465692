// One decode step of a stack of Qwen2 decoder layers in one call: M rows, one new token each, weights quantized
// for wo_gemm.cpp, bf16 packed for bf16_gemm.cpp or dense (at::linear), K/V in the engine's paged fp32 pools. The
// residual stream and everything between the GEMMs stay fp32 whatever the weights' dtype.
//
// Per layer: RMSNorm -> fused q/k/v GEMM + bias -> RoPE (NeoX halves) -> write k/v into each row's slot ->
// attention of each row over its own keys -> o GEMM -> residual -> RMSNorm -> fused gate/up GEMM -> SiLU(gate) * up
// -> down GEMM -> residual. The module path does the same in ~30 PyTorch ops and ~15 Python module calls per layer,
// which at one row cost about as much as the memory-bound matmuls of the small layers; here the only dispatch is
// this call. Everything between the GEMMs is a few KB per row and runs on one thread; the GEMMs and the attention
// (per row and KV head) are split over threads. Nothing mixes rows, and the GEMMs give a row the same bits in any
// batch, so a row's output does not depend on the other rows.
//
// Arguments, per layer l (weights: 11 tensors, sizes: 12 ints, in this order):
//   weights  input norm [H], post-attention norm [H], qkv codes, qkv scales, qkv bias [(Hq + 2 Hkv) D],
//            o codes, o scales, gate/up codes, gate/up scales, down codes, down scales
//            (norms and bias fp32 or bf16; a dense projection passes its weight [n, k] as the codes and an empty
//            tensor as the scales)
//   sizes    (n, group, terms) for qkv, o, gate/up, down; group 0 = int8 weight (scales fp32), -1 = dense weight
//            (terms unused), -2 = bf16 weight packed for bf16_gemm.cpp, else int4 with that group size
//            (scale_zeros bf16): see wo_gemm.cpp and bf16_gemm.cpp for the layouts
//   k_pools[l], v_pools[l]  fp32 [slots, Hkv, D]; write_slots [M]: where each row's new k/v go;
//   read_slots [M, W]: each row's key slots in position order, the first lengths[r] of them valid (the new one
//   included); cos, sin [M, D] (scaled already, as qwq.model.rope gives them).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "wo_gemm.h"

namespace {

constexpr int64_t kWeightsPerLayer = 11;
constexpr int64_t kSizesPerLayer = 12;

// e^x for 16 lanes: 2^n * p(r), r = x - n ln 2 in [-ln2/2, ln2/2], p Cephes' degree-6 polynomial (~1 ulp in range).
inline __m512 exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.7f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

inline __mmask16 tail_mask(int64_t count) {
  return count >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << count) - 1u);
}

// y = w * (x / sqrt(mean(x^2) + eps)) per row (fp32, the order qwq.model.qwen2.RMSNorm uses).
void rms_norm(const float* x, const float* w, float* y, int64_t rows, int64_t width, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * width;
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < width; i += 16) {
      const __m512 v = _mm512_maskz_loadu_ps(tail_mask(width - i), xr + i);
      acc = _mm512_fmadd_ps(v, v, acc);
    }
    const float scale = 1.0f / std::sqrt(_mm512_reduce_add_ps(acc) / static_cast<float>(width) + eps);
    const __m512 s = _mm512_set1_ps(scale);
    for (int64_t i = 0; i < width; i += 16) {
      const __mmask16 m = tail_mask(width - i);
      const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, xr + i), s);
      _mm512_mask_storeu_ps(y + r * width + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, w + i), v));
    }
  }
}

// x = x * cos + rotate_half(x) * sin for `heads` heads of one row (rotate_half(x) = [-x2, x1]).
void rotate(float* x, const float* cos, const float* sin, int64_t heads, int64_t dim) {
  const int64_t half = dim / 2;
  for (int64_t h = 0; h < heads; ++h) {
    float* v = x + h * dim;
    for (int64_t i = 0; i < half; ++i) {
      const float a = v[i], b = v[i + half];
      v[i] = a * cos[i] - b * sin[i];
      v[i + half] = b * cos[i + half] + a * sin[i + half];
    }
  }
}

// Lane i of the result = the sum of the 16 lanes of v[i] (16 dot products finished at once: a shuffle tree instead
// of 16 horizontal reductions).
inline __m512 sum_lanes16(const __m512* v) {
  __m512 quad[4];
  for (int g = 0; g < 4; ++g) {  // per 128-bit block: the block sums of v[4g .. 4g + 3]
    const __m512* w = v + 4 * g;
    const __m512 a = _mm512_add_ps(_mm512_unpacklo_ps(w[0], w[1]), _mm512_unpackhi_ps(w[0], w[1]));
    const __m512 b = _mm512_add_ps(_mm512_unpacklo_ps(w[2], w[3]), _mm512_unpackhi_ps(w[2], w[3]));
    quad[g] = _mm512_add_ps(_mm512_shuffle_ps(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                            _mm512_shuffle_ps(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
  }
  const __m512 lo = _mm512_add_ps(_mm512_shuffle_f32x4(quad[0], quad[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                  _mm512_shuffle_f32x4(quad[0], quad[1], _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512 hi = _mm512_add_ps(_mm512_shuffle_f32x4(quad[2], quad[3], _MM_SHUFFLE(2, 0, 2, 0)),
                                  _mm512_shuffle_f32x4(quad[2], quad[3], _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm512_add_ps(_mm512_shuffle_f32x4(lo, hi, _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(lo, hi, _MM_SHUFFLE(3, 1, 3, 1)));
}

// acc[0 .. 16C) += sum_{j in [j0, j1)} p[j] * v_j, v_j = base + slots[j] * stride (C = D / 16 registers).
template <int C>
void accumulate_values(const float* p, const float* base, const int64_t* slots, int64_t stride, int64_t j0,
                       int64_t j1, float* acc_out) {
  __m512 acc[C];
  for (int c = 0; c < C; ++c) acc[c] = _mm512_loadu_ps(acc_out + 16 * c);
  for (int64_t j = j0; j < j1; ++j) {
    const __m512 weight = _mm512_set1_ps(p[j]);
    const float* v = base + slots[j] * stride;
    for (int c = 0; c < C; ++c) acc[c] = _mm512_fmadd_ps(weight, _mm512_loadu_ps(v + 16 * c), acc[c]);
  }
  for (int c = 0; c < C; ++c) _mm512_storeu_ps(acc_out + 16 * c, acc[c]);
}

void accumulate_values_any(const float* p, const float* base, const int64_t* slots, int64_t stride, int64_t j0,
                           int64_t j1, float* acc_out, int64_t dim) {
  switch (dim / 16) {
    case 4: accumulate_values<4>(p, base, slots, stride, j0, j1, acc_out); break;
    case 8: accumulate_values<8>(p, base, slots, stride, j0, j1, acc_out); break;
    default:
      for (int64_t d = 0; d < dim; d += 16) accumulate_values<1>(p, base + d, slots, stride, j0, j1, acc_out + d);
  }
}

// softmax(q k^T / sqrt(D)) v for the query heads of KV head `kv` of one row; q and out [Hq, D] of that row.
// Keys go in tiles of 16: each key is loaded once for all of the KV head's query heads.
void attend(const float* q, const float* keys, const float* values, const int64_t* slots, int64_t length, int64_t kv,
            int64_t kv_heads, int64_t per_kv, int64_t dim, float* out, std::vector<float>& scratch) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(dim));
  const int64_t slot_stride = kv_heads * dim;
  scratch.resize(per_kv * length + per_kv * 16 * 16 + 16);
  float* scores = scratch.data();
  // 64-byte aligned partial products, [head][key in tile][16 lanes]
  const uintptr_t after_scores = reinterpret_cast<uintptr_t>(scores + per_kv * length);
  auto* partial = reinterpret_cast<__m512*>((after_scores + 63) & ~uintptr_t(63));
  const float* q_group = q + kv * per_kv * dim;
  for (int64_t j0 = 0; j0 < length; j0 += 16) {
    const int64_t tile = std::min<int64_t>(16, length - j0);
    for (int64_t t = 0; t < 16; ++t) {
      if (t >= tile) {
        for (int64_t h = 0; h < per_kv; ++h) partial[h * 16 + t] = _mm512_setzero_ps();
        continue;
      }
      const float* k = keys + slots[j0 + t] * slot_stride + kv * dim;
      for (int64_t h = 0; h < per_kv; ++h) {
        const float* qh = q_group + h * dim;
        __m512 acc = _mm512_mul_ps(_mm512_loadu_ps(qh), _mm512_loadu_ps(k));
        for (int64_t d = 16; d < dim; d += 16)
          acc = _mm512_fmadd_ps(_mm512_loadu_ps(qh + d), _mm512_loadu_ps(k + d), acc);
        partial[h * 16 + t] = acc;
      }
    }
    for (int64_t h = 0; h < per_kv; ++h)
      _mm512_mask_storeu_ps(scores + h * length + j0, tail_mask(tile),
                            _mm512_mul_ps(sum_lanes16(partial + h * 16), _mm512_set1_ps(scale)));
  }
  float* out_group = out + kv * per_kv * dim;
  std::vector<float> totals(per_kv);
  for (int64_t h = 0; h < per_kv; ++h) {  // softmax numerators in place, and their sums
    float* s = scores + h * length;
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (int64_t j = 0; j < length; j += 16)
      vmax = _mm512_max_ps(vmax, _mm512_mask_loadu_ps(vmax, tail_mask(length - j), s + j));
    const __m512 top = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
    __m512 vsum = _mm512_setzero_ps();
    for (int64_t j = 0; j < length; j += 16) {
      const __mmask16 m = tail_mask(length - j);
      const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + j), top));
      _mm512_mask_storeu_ps(s + j, m, e);
      vsum = _mm512_add_ps(vsum, _mm512_maskz_mov_ps(m, e));
    }
    totals[h] = _mm512_reduce_add_ps(vsum);
  }
  // Values in tiles of 64 keys (16 KB at D = 64) that stay in L1 while every query head of the group uses them.
  std::fill(out_group, out_group + per_kv * dim, 0.0f);
  constexpr int64_t kValueTile = 64;
  for (int64_t j0 = 0; j0 < length; j0 += kValueTile) {
    const int64_t j1 = std::min(length, j0 + kValueTile);
    for (int64_t h = 0; h < per_kv; ++h)
      accumulate_values_any(scores + h * length, values + kv * dim, slots, slot_stride, j0, j1, out_group + h * dim,
                            dim);
  }
  for (int64_t h = 0; h < per_kv; ++h) {
    const __m512 total = _mm512_set1_ps(totals[h]);
    for (int64_t d = 0; d < dim; d += 16)
      _mm512_storeu_ps(out_group + h * dim + d, _mm512_div_ps(_mm512_loadu_ps(out_group + h * dim + d), total));
  }
}

constexpr int64_t kDense = -1;        // a weight [n, k] for at::linear
constexpr int64_t kPackedBf16 = -2;   // a bf16 weight packed for bf16_gemm.cpp

// x [M, K] fp32 -> [M, n] fp32. A bf16 dense weight takes x rounded to bf16 (as the bf16 model's modules would
// see it), accumulates in fp32 inside oneDNN and rounds its output to bf16 before it is widened here.
at::Tensor linear(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& scales, const int64_t* size) {
  if (size[1] == kDense) {
    TORCH_CHECK(codes.dim() == 2 && codes.size(0) == size[0] && codes.size(1) == x.size(1),
                "decode_layers: a dense weight must be [", size[0], ", ", x.size(1), "], got ", codes.sizes());
    if (codes.scalar_type() == at::kFloat) return at::linear(x, codes);
    return at::linear(x.to(codes.scalar_type()), codes).to(at::kFloat);
  }
  if (size[1] == kPackedBf16) return qwq::bf16_gemm(x, codes, size[0]);
  return size[1] == 0 ? qwq::int8_gemm(x, codes, scales, size[0], size[2])
                      : qwq::int4_gemm(x, codes, scales, size[0], size[1], size[2]);
}

// fp32 view of a norm weight or bias (a bf16 model's are converted, a few KB a layer).
at::Tensor as_float(const at::Tensor& t) { return t.to(at::kFloat).contiguous(); }

struct Shape {
  int64_t rows, hidden, heads, kv_heads, dim, intermediate, width;
};

at::Tensor decode_layer(const at::Tensor& x, const at::Tensor* w, const int64_t* size, const float* cos,
                        const float* sin, const at::Tensor& k_pool, const at::Tensor& v_pool, const int64_t* write,
                        const int64_t* read, const int64_t* lengths, float eps, const Shape& s) {
  const int64_t q_width = s.heads * s.dim, kv_width = s.kv_heads * s.dim, qkv_width = q_width + 2 * kv_width;
  TORCH_CHECK(size[0] == qkv_width && size[3] == s.hidden && size[6] == 2 * s.intermediate && size[9] == s.hidden,
              "decode_layers: projection sizes ", size[0], ", ", size[3], ", ", size[6], ", ", size[9],
              " do not match the model's shape");
  TORCH_CHECK(w[4].numel() == qkv_width, "decode_layers: the qkv bias must have ", qkv_width, " elements");
  const at::Tensor qkv_bias = as_float(w[4]), input_norm = as_float(w[0]), post_norm = as_float(w[1]);
  at::Tensor h = at::empty_like(x);
  rms_norm(x.data_ptr<float>(), input_norm.data_ptr<float>(), h.data_ptr<float>(), s.rows, s.hidden, eps);
  at::Tensor qkv = linear(h, w[2], w[3], size);
  float* qkv_p = qkv.data_ptr<float>();
  const float* bias = qkv_bias.data_ptr<float>();
  float* k_base = k_pool.data_ptr<float>();
  float* v_base = v_pool.data_ptr<float>();
  for (int64_t r = 0; r < s.rows; ++r) {
    float* row = qkv_p + r * qkv_width;
    for (int64_t i = 0; i < qkv_width; ++i) row[i] += bias[i];
    rotate(row, cos + r * s.dim, sin + r * s.dim, s.heads + s.kv_heads, s.dim);  // q heads then k heads
    std::memcpy(k_base + write[r] * kv_width, row + q_width, kv_width * sizeof(float));
    std::memcpy(v_base + write[r] * kv_width, row + q_width + kv_width, kv_width * sizeof(float));
  }
  at::Tensor attn = at::empty({s.rows, q_width}, x.options());
  float* attn_p = attn.data_ptr<float>();
  const int64_t per_kv = s.heads / s.kv_heads;
  at::parallel_for(0, s.rows * s.kv_heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t r = task / s.kv_heads, kv = task % s.kv_heads;
      attend(qkv_p + r * qkv_width, k_base, v_base, read + r * s.width, lengths[r], kv, s.kv_heads, per_kv, s.dim,
             attn_p + r * q_width, scores);
    }
  });
  at::Tensor out = linear(attn, w[5], w[6], size + 3);  // o projection, then the residual into it
  float* out_p = out.data_ptr<float>();
  const float* x_p = x.data_ptr<float>();
  for (int64_t i = 0; i < s.rows * s.hidden; ++i) out_p[i] = x_p[i] + out_p[i];
  rms_norm(out_p, post_norm.data_ptr<float>(), h.data_ptr<float>(), s.rows, s.hidden, eps);
  at::Tensor gate_up = linear(h, w[7], w[8], size + 6);
  at::Tensor act = at::empty({s.rows, s.intermediate}, x.options());
  const float* gu = gate_up.data_ptr<float>();
  float* act_p = act.data_ptr<float>();
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t r = 0; r < s.rows; ++r) {
    const float* g = gu + r * 2 * s.intermediate;
    const float* u = g + s.intermediate;
    for (int64_t i = 0; i < s.intermediate; i += 16) {  // silu(g) * u = g / (1 + e^-g) * u
      const __mmask16 m = tail_mask(s.intermediate - i);
      const __m512 gv = _mm512_maskz_loadu_ps(m, g + i);
      const __m512 silu = _mm512_div_ps(gv, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), gv))));
      _mm512_mask_storeu_ps(act_p + r * s.intermediate + i, m, _mm512_mul_ps(silu, _mm512_maskz_loadu_ps(m, u + i)));
    }
  }
  at::Tensor down = linear(act, w[9], w[10], size + 9);
  float* down_p = down.data_ptr<float>();
  for (int64_t i = 0; i < s.rows * s.hidden; ++i) down_p[i] = out_p[i] + down_p[i];
  return down;
}

void check_pool(const at::Tensor& pool, const Shape& s, int64_t slots) {
  TORCH_CHECK(pool.scalar_type() == at::kFloat && pool.is_contiguous() && pool.device().is_cpu() && pool.dim() == 3 &&
                  pool.size(0) == slots && pool.size(1) == s.kv_heads && pool.size(2) == s.dim,
              "decode_layers: K/V pools must be contiguous fp32 [", slots, ", ", s.kv_heads, ", ", s.dim, "], got ",
              pool.sizes(), " ", pool.scalar_type());
}

at::Tensor decode_layers(const at::Tensor& x_in, at::TensorList weights, at::IntArrayRef sizes, const at::Tensor& cos,
                         const at::Tensor& sin, at::TensorList k_pools, at::TensorList v_pools,
                         const at::Tensor& write_slots, const at::Tensor& read_slots, const at::Tensor& lengths,
                         double eps, int64_t num_heads, int64_t num_kv_heads) {
  const int64_t layers = static_cast<int64_t>(k_pools.size());
  TORCH_CHECK(static_cast<int64_t>(weights.size()) == layers * kWeightsPerLayer &&
                  static_cast<int64_t>(sizes.size()) == layers * kSizesPerLayer &&
                  static_cast<int64_t>(v_pools.size()) == layers,
              "decode_layers: ", kWeightsPerLayer, " weights, ", kSizesPerLayer, " sizes and a K and V pool per layer");
  TORCH_CHECK(x_in.dim() == 2 && x_in.scalar_type() == at::kFloat && x_in.device().is_cpu(),
              "decode_layers: x must be fp32 [M, hidden] on the CPU");
  TORCH_CHECK(layers > 0 && num_kv_heads > 0 && num_heads % num_kv_heads == 0, "decode_layers: bad head counts");
  const at::Tensor x0 = x_in.contiguous();
  Shape s{x0.size(0), x0.size(1), num_heads, num_kv_heads, cos.size(-1), sizes[6] / 2, read_slots.size(-1)};
  TORCH_CHECK(s.dim % 16 == 0 && s.dim <= 256, "decode_layers: head_dim must be a multiple of 16, got ", s.dim);
  TORCH_CHECK(cos.scalar_type() == at::kFloat && sin.scalar_type() == at::kFloat && cos.is_contiguous() &&
                  sin.is_contiguous() && cos.numel() == s.rows * s.dim && sin.numel() == s.rows * s.dim,
              "decode_layers: cos/sin must be contiguous fp32 [M, head_dim]");
  TORCH_CHECK(write_slots.scalar_type() == at::kLong && read_slots.scalar_type() == at::kLong &&
                  lengths.scalar_type() == at::kLong && write_slots.is_contiguous() && read_slots.is_contiguous() &&
                  lengths.is_contiguous() && write_slots.numel() == s.rows && lengths.numel() == s.rows &&
                  read_slots.dim() == 2 && read_slots.size(0) == s.rows,
              "decode_layers: write_slots [M], read_slots [M, W], lengths [M] must be contiguous int64");
  const int64_t slots = k_pools[0].size(0);
  const int64_t* write = write_slots.data_ptr<int64_t>();
  const int64_t* read = read_slots.data_ptr<int64_t>();
  const int64_t* len = lengths.data_ptr<int64_t>();
  for (int64_t r = 0; r < s.rows; ++r) {  // every index the kernel follows stays inside the pools
    TORCH_CHECK(write[r] >= 0 && write[r] < slots, "decode_layers: write slot ", write[r], " outside the pool");
    TORCH_CHECK(len[r] >= 1 && len[r] <= s.width, "decode_layers: row ", r, " has ", len[r], " keys, W=", s.width);
    for (int64_t j = 0; j < len[r]; ++j)
      TORCH_CHECK(read[r * s.width + j] >= 0 && read[r * s.width + j] < slots,
                  "decode_layers: read slot outside the pool");
  }
  for (int64_t l = 0; l < layers; ++l) {
    check_pool(k_pools[l], s, slots);
    check_pool(v_pools[l], s, slots);
    const at::Tensor* w = weights.data() + l * kWeightsPerLayer;
    for (int i : {0, 1})
      TORCH_CHECK((w[i].scalar_type() == at::kFloat || w[i].scalar_type() == at::kBFloat16) &&
                      w[i].numel() == s.hidden,
                  "decode_layers: layer ", l, " norm weights must be fp32 or bf16 [", s.hidden, "]");
  }
  at::Tensor x = x0;
  for (int64_t l = 0; l < layers; ++l) {
    x = decode_layer(x, weights.data() + l * kWeightsPerLayer, sizes.data() + l * kSizesPerLayer,
                     cos.data_ptr<float>(), sin.data_ptr<float>(), k_pools[l], v_pools[l], write, read, len,
                     static_cast<float>(eps), s);
  }
  return x;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(qwq_kernels, m) {
  m.def("decode_layers(Tensor x, Tensor[] weights, int[] sizes, Tensor cos, Tensor sin, Tensor[] k_pools, "
        "Tensor[] v_pools, Tensor write_slots, Tensor read_slots, Tensor lengths, float eps, int num_heads, "
        "int num_kv_heads) -> Tensor");
}

TORCH_LIBRARY_IMPL(qwq_kernels, CPU, m) { m.impl("decode_layers", &decode_layers); }
