#include "kernels.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

// Two builds of each kernel on x86-64 with GCC or Clang: AVX2 (8 floats a
// lane; an indexed load is emulated, index by index, as GCC does for the
// generic tuning: the gather instruction measured twice as slow here) and
// the baseline, chosen once by the loader (an ifunc, on
// the CPU's features: "arch=" clones would test the CPU's model and miss
// AMD's). Selects instead of branches, and no division under a condition,
// so both vectorise.
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(COZY_NO_MULTIVERSION)
#define COZY_MULTIVERSION __attribute__((target_clones("avx2", "default")))
#define COZY_DISPATCH
#else
#define COZY_MULTIVERSION
#endif

namespace cozy::postprocess::kernels {
namespace {
inline float clamp01(float v) { return std::min(1.f, std::max(0.f, v)); }
inline float wrap6(float k) { return k >= 6.f ? k - 6.f : k; }
// HSV to RGB for one channel: v - v s max(0, min(k, 4 - k, 1)); v s = delta.
inline float channel(float v, float delta, float k) {
  return clamp01(v - delta * std::max(0.f, std::min(std::min(k, 4.f - k), 1.f)));
}
}  // namespace

COZY_MULTIVERSION
void hue_shift(const float* __restrict r_in, const float* __restrict g_in, const float* __restrict b_in,
               float* __restrict r_out, float* __restrict g_out, float* __restrict b_out, int64_t n, float shift) {
  for (int64_t i = 0; i < n; ++i) {
    const float r = clamp01(r_in[i]), g = clamp01(g_in[i]), b = clamp01(b_in[i]);
    const float v = std::max(r, std::max(g, b));
    const float delta = v - std::min(r, std::min(g, b));
    // One division, always done: 60 / delta (a grey pixel's hue is 0 below).
    const float scale = 60.f / (delta > 0.f ? delta : 1.f);
    const float from_r = (g - b) * scale;
    const float from_g = 120.f + (b - r) * scale;
    const float from_b = 240.f + (r - g) * scale;
    float h = v == r ? from_r : (v == g ? from_g : from_b);
    h = (delta > 0.f ? h : 0.f) + shift;  // in (-60, 720)
    h = h < 0.f ? h + 360.f : h;
    h = h >= 360.f ? h - 360.f : h;
    h = h >= 360.f ? h - 360.f : h;
    const float sixth = h * (1.f / 60.f);
    r_out[i] = channel(v, delta, wrap6(5.f + sixth));
    g_out[i] = channel(v, delta, wrap6(3.f + sixth));
    b_out[i] = channel(v, delta, wrap6(1.f + sixth));
  }
}

COZY_MULTIVERSION
void unsharp(const float* __restrict x, const float* __restrict blurred, float* __restrict out, int64_t n, float amount,
             float threshold) {
  for (int64_t i = 0; i < n; ++i) {
    const float d = x[i] - blurred[i];
    out[i] = clamp01(x[i] + (std::abs(d) >= threshold ? amount * d : 0.f));
  }
}

COZY_MULTIVERSION
void threshold(const float* __restrict x, float* __restrict out, int64_t n, float t) {
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] > t ? 1.f : 0.f;
}

COZY_MULTIVERSION
void luma(const float* __restrict r, const float* __restrict g, const float* __restrict b, float* __restrict out,
          int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = 0.299f * r[i] + 0.587f * g[i] + 0.114f * b[i];
}

COZY_MULTIVERSION
void sepia(const float* __restrict r, const float* __restrict g, const float* __restrict b, float* __restrict r_out,
           float* __restrict g_out, float* __restrict b_out, int64_t n, const float* __restrict m, float strength) {
  const float m00 = m[0], m01 = m[1], m02 = m[2], m10 = m[3], m11 = m[4], m12 = m[5], m20 = m[6], m21 = m[7],
              m22 = m[8];
  for (int64_t i = 0; i < n; ++i) {
    const float x0 = r[i], x1 = g[i], x2 = b[i];
    r_out[i] = clamp01(x0 + strength * (clamp01(m00 * x0 + m01 * x1 + m02 * x2) - x0));
    g_out[i] = clamp01(x1 + strength * (clamp01(m10 * x0 + m11 * x1 + m12 * x2) - x1));
    b_out[i] = clamp01(x2 + strength * (clamp01(m20 * x0 + m21 * x1 + m22 * x2) - x2));
  }
}

COZY_MULTIVERSION
void threshold_luma(const float* __restrict r, const float* __restrict g, const float* __restrict b,
                    float* __restrict out, int64_t n, float t) {
  for (int64_t i = 0; i < n; ++i) out[i] = 0.299f * r[i] + 0.587f * g[i] + 0.114f * b[i] > t ? 1.f : 0.f;
}

namespace {
template <class To, class From>
inline To bits_as(From v) {  // std::bit_cast, C++20
  static_assert(sizeof(To) == sizeof(From));
  To out;
  std::memcpy(&out, &v, sizeof out);
  return out;
}

// x^p = 2^(p log2 x). log2 x = e + log2 m with m in [sqrt(1/2), sqrt(2)):
// ln m = 2 atanh(t), t = (m - 1) / (m + 1), |t| < 0.172, by its series to
// t^9 (the next term is under 4e-9). 2^y = 2^k 2^f, k = round(y), |f| <= 1/2,
// 2^f by its Taylor series to the 7th power (the next term under 2e-8),
// summed as Estrin does (pairs, then pairs of pairs: a chain of three
// multiply-adds where Horner's is seven). Written without branches on plain
// floats and integers: it vectorises.
[[gnu::always_inline]] inline void power_loop(const float* __restrict x, float* __restrict out, int64_t n, float p) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = std::min(1.f, std::max(0.f, x[i]));
    const bool tiny = v < 1.17549435e-38f;  // subnormal (or 0): scaled by 2^23 first
    const uint32_t bits = bits_as<uint32_t>(tiny ? v * 8388608.f : v);
    float m = bits_as<float>((bits & 0x007fffffu) | 0x3f800000u);  // [1, 2)
    int32_t e = static_cast<int32_t>(bits >> 23) - (tiny ? 150 : 127);
    const bool high = m > 1.41421356f;
    m = high ? 0.5f * m : m;
    e = high ? e + 1 : e;
    const float t = (m - 1.f) / (m + 1.f), t2 = t * t, t4 = t2 * t2;
    // log2 m = (2 / ln 2) t (1 + t2 / 3 + t4 / 5 + t6 / 7 + t8 / 9)
    const float series = (1.f + t2 * (1.f / 3)) + t4 * ((1.f / 5 + t2 * (1.f / 7)) + t4 * (1.f / 9));
    const float log2_m = t * 2.88539008f * series;
    const float y = std::max(-127.f, p * (static_cast<float>(e) + log2_m));  // <= 0: v <= 1
    const float k = (y + 12582912.f) - 12582912.f;                           // round to nearest: 1.5 x 2^23
    const float g = (y - k) * 0.693147181f, g2 = g * g, g4 = g2 * g2;
    const float two_f = ((1.f + g) + g2 * (0.5f + g * (1.f / 6))) +
                        g4 * ((1.f / 24 + g * (1.f / 120)) + g2 * (1.f / 720 + g * (1.f / 5040)));
    const int32_t biased = static_cast<int32_t>(k) + 127;  // 0 when k = -127: the result is under 2^-126
    const float scaled = two_f * bits_as<float>(static_cast<uint32_t>(std::max(biased, 0)) << 23);
    out[i] = v > 0.f && biased > 0 ? std::min(1.f, scaled) : 0.f;
  }
}

#if defined(COZY_DISPATCH)
// The same steps in AVX2 and FMA instructions, 8 pixels at a time: half the
// instructions GCC makes of the loop above (its selects keep NaN's order
// where max and min do not need to, and target_clones' "avx2" has no FMA),
// so twice as fast. -126 in place of -127 as the floor of y: a positive
// input's smallest result is then 2^-126.5, not 0.
__attribute__((target("avx2,fma"))) void power_fma(const float* __restrict x, float* __restrict out, int64_t n,
                                                   float p) {
  const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.f), exponent = _mm256_set1_ps(p);
  const __m256i mantissa_mask = _mm256_set1_epi32(0x007fffff), one_bits = _mm256_set1_epi32(0x3f800000);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_min_ps(one, _mm256_max_ps(zero, _mm256_loadu_ps(x + i)));
    const __m256 tiny = _mm256_cmp_ps(v, _mm256_set1_ps(1.17549435e-38f), _CMP_LT_OQ);
    const __m256i bits = _mm256_castps_si256(_mm256_blendv_ps(v, _mm256_mul_ps(v, _mm256_set1_ps(8388608.f)), tiny));
    __m256 m = _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(bits, mantissa_mask), one_bits));
    const __m256i bias =
        _mm256_add_epi32(_mm256_set1_epi32(127), _mm256_and_si256(_mm256_castps_si256(tiny), _mm256_set1_epi32(23)));
    __m256 e = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(bits, 23), bias));
    const __m256 high = _mm256_cmp_ps(m, _mm256_set1_ps(1.41421356f), _CMP_GT_OQ);
    m = _mm256_blendv_ps(m, _mm256_mul_ps(m, _mm256_set1_ps(0.5f)), high);
    e = _mm256_add_ps(e, _mm256_and_ps(high, one));
    const __m256 t = _mm256_div_ps(_mm256_sub_ps(m, one), _mm256_add_ps(m, one));
    const __m256 t2 = _mm256_mul_ps(t, t), t4 = _mm256_mul_ps(t2, t2);
    // (2 / ln 2) (1 + t2 / 3 + t4 / 5 + t6 / 7 + t8 / 9), in pairs
    const float c = 2.88539008f;
    const __m256 low = _mm256_fmadd_ps(t2, _mm256_set1_ps(c / 3), _mm256_set1_ps(c));
    const __m256 mid = _mm256_fmadd_ps(t2, _mm256_set1_ps(c / 7), _mm256_set1_ps(c / 5));
    const __m256 series = _mm256_fmadd_ps(t4, _mm256_fmadd_ps(t4, _mm256_set1_ps(c / 9), mid), low);
    const __m256 y = _mm256_max_ps(_mm256_set1_ps(-126.f), _mm256_mul_ps(exponent, _mm256_fmadd_ps(t, series, e)));
    const __m256 k = _mm256_round_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 f = _mm256_sub_ps(y, k);
    // 2^f = sum of (f ln 2)^j / j! for j <= 7, in pairs, then pairs of pairs
    const float l1 = 0.693147181f, l2 = l1 * l1 / 2, l3 = l2 * l1 / 3, l4 = l3 * l1 / 4, l5 = l4 * l1 / 5,
                l6 = l5 * l1 / 6, l7 = l6 * l1 / 7;
    const __m256 f2 = _mm256_mul_ps(f, f), f4 = _mm256_mul_ps(f2, f2);
    const __m256 p01 = _mm256_fmadd_ps(f, _mm256_set1_ps(l1), one);
    const __m256 p23 = _mm256_fmadd_ps(f, _mm256_set1_ps(l3), _mm256_set1_ps(l2));
    const __m256 p45 = _mm256_fmadd_ps(f, _mm256_set1_ps(l5), _mm256_set1_ps(l4));
    const __m256 p67 = _mm256_fmadd_ps(f, _mm256_set1_ps(l7), _mm256_set1_ps(l6));
    const __m256 two_f = _mm256_fmadd_ps(f4, _mm256_fmadd_ps(f2, p67, p45), _mm256_fmadd_ps(f2, p23, p01));
    const __m256i scale = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    const __m256 result = _mm256_min_ps(one, _mm256_mul_ps(two_f, _mm256_castsi256_ps(scale)));
    _mm256_storeu_ps(out + i, _mm256_and_ps(result, _mm256_cmp_ps(v, zero, _CMP_GT_OQ)));
  }
  power_loop(x + i, out + i, n - i, p);
}
#endif
}  // namespace

void power(const float* x, float* out, int64_t n, float p) {
#if defined(COZY_DISPATCH)
  static const bool fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (fma) return power_fma(x, out, n, p);
#endif
  power_loop(x, out, n, p);
}

namespace {
// Eight floats, loaded and stored at any address: GCC's and Clang's vector
// extension, two SSE registers in the baseline build, one AVX register in
// the AVX2 one. The filters below sum 32 outputs at once in four of them:
// written as plain loops over 32 floats, GCC unrolled them into scalar code.
typedef float f8 __attribute__((vector_size(32), aligned(4)));
// By reference: GCC warns (-Wpsabi) of passing an AVX vector by value in the
// baseline build.
inline const f8& at8(const float* p) { return *reinterpret_cast<const f8*>(p); }
inline f8& at8(float* p) { return *reinterpret_cast<f8*>(p); }
inline void clamp01(f8& v) {
  const f8 zero = {}, one = zero + 1.f;
  v = v < zero ? zero : v > one ? one : v;
}

// out[i] = k[0] p[i] + sum over 1 <= j <= r of k[j] (p[i - j] + p[i + j]):
// one row of a symmetric filter; p has r readable floats either side.
COZY_MULTIVERSION
void symmetric_row(const float* __restrict p, float* __restrict out, int64_t n, const float* __restrict k, int r) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const float* c = p + i;
    f8 a0 = k[0] * at8(c), a1 = k[0] * at8(c + 8), a2 = k[0] * at8(c + 16), a3 = k[0] * at8(c + 24);
    for (int j = 1; j <= r; ++j) {
      const float kj = k[j];
      a0 += kj * (at8(c - j) + at8(c + j));
      a1 += kj * (at8(c + 8 - j) + at8(c + 8 + j));
      a2 += kj * (at8(c + 16 - j) + at8(c + 16 + j));
      a3 += kj * (at8(c + 24 - j) + at8(c + 24 + j));
    }
    at8(out + i) = a0, at8(out + i + 8) = a1, at8(out + i + 16) = a2, at8(out + i + 24) = a3;
  }
  for (; i < n; ++i) {
    float acc = k[0] * p[i];
    for (int j = 1; j <= r; ++j) acc += k[j] * (p[i - j] + p[i + j]);
    out[i] = acc;
  }
}

// The same filter down a column of rows: rows[r] is the centre row, rows[r -
// j] and rows[r + j] the rows j above and below. Clamped to [0, 1] (the
// kernel's float weights may sum to an ulp over 1).
COZY_MULTIVERSION
void symmetric_column(const float* const* __restrict rows, float* __restrict out, int64_t n, const float* __restrict k,
                      int r) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const float* c = rows[r] + i;
    f8 a0 = k[0] * at8(c), a1 = k[0] * at8(c + 8), a2 = k[0] * at8(c + 16), a3 = k[0] * at8(c + 24);
    for (int j = 1; j <= r; ++j) {
      const float kj = k[j];
      const float* up = rows[r - j] + i;
      const float* down = rows[r + j] + i;
      a0 += kj * (at8(up) + at8(down));
      a1 += kj * (at8(up + 8) + at8(down + 8));
      a2 += kj * (at8(up + 16) + at8(down + 16));
      a3 += kj * (at8(up + 24) + at8(down + 24));
    }
    clamp01(a0), clamp01(a1), clamp01(a2), clamp01(a3);
    at8(out + i) = a0, at8(out + i + 8) = a1, at8(out + i + 16) = a2, at8(out + i + 24) = a3;
  }
  for (; i < n; ++i) {
    float acc = k[0] * rows[r][i];
    for (int j = 1; j <= r; ++j) acc += k[j] * (rows[r - j][i] + rows[r + j][i]);
    out[i] = clamp01(acc);
  }
}

// Reflect-101 of index i over [0, n), for |i| < n + n - 1.
inline int64_t reflect_101(int64_t i, int64_t n) { return i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i; }
}  // namespace

void symmetric_filter(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t h, int64_t w,
                      const float* k, int r, int64_t y_begin, int64_t y_end) {
  const int64_t window = 2 * r + 1;
  thread_local std::vector<float> padded, ring;
  thread_local std::vector<const float*> column;
  padded.resize(static_cast<std::size_t>(w + 2 * r));
  ring.resize(static_cast<std::size_t>(window * w));
  column.resize(static_cast<std::size_t>(window));
  // Source row y, filtered along the row, lands in slot y mod (2r + 1): an
  // output row reads source rows within r of it, so they never collide.
  auto filter_row = [&](int64_t y) {
    const float* row = src + y * src_stride;
    float* p = padded.data() + r;
    std::copy(row, row + w, p);
    for (int j = 1; j <= r; ++j) {
      p[-j] = row[j];
      p[w - 1 + j] = row[w - 1 - j];
    }
    symmetric_row(p, ring.data() + (y % window) * w, w, k, r);
  };
  const int64_t first = std::max<int64_t>(0, y_begin - r);
  int64_t next = first;  // the next source row to filter
  for (int64_t y = y_begin; y < y_end; ++y) {
    for (; next <= std::min(h - 1, y + r); ++next) filter_row(next);
    for (int64_t j = -r; j <= r; ++j)
      column[static_cast<std::size_t>(j + r)] = ring.data() + (reflect_101(y + j, h) % window) * w;
    symmetric_column(column.data(), dst + y * dst_stride, w, k, r);
  }
  if (ring.size() > (std::size_t{1} << 20)) std::vector<float>().swap(ring);  // over 4 MiB: not kept
}

namespace {
// True where `rep movsb` copies Pad's rows faster than a vector loop: CPUs
// with fast short string moves (FSRM), but not AMD's before Zen 5 (family
// 26). Pad's rows of 256 floats, output in the cache (bench_filters --size
// 256, 1 thread): a Zen 5 (2 cores) 0.91-0.94 of OpenCV by the loop,
// 1.10-1.18 by rep movsb; a Zen 3 (FSRM too) ran glibc's rep movsb
// a fifth slower than the loop. Intel's cores not measured. Not for every
// copy: Flip's rows, read bottom up, went the other way on the Zen 5 (1.44-1.52
// by the loop, 1.21-1.27 by rep movsb, 1 thread). COZY_POSTPROCESS_NO_REP_MOVSB: the
// loop everywhere, to compare both ways.
bool fast_string_moves() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  static const bool fast = [] {
    if (std::getenv("COZY_POSTPROCESS_NO_REP_MOVSB")) return false;
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || (d & (1u << 4)) == 0) return false;  // FSRM
    __get_cpuid(0, &a, &b, &c, &d);
    const bool amd = b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163;  // "AuthenticAMD"
    __get_cpuid(1, &a, &b, &c, &d);
    const unsigned base = (a >> 8) & 0xf, family = base == 0xf ? base + ((a >> 20) & 0xff) : base;
    return !amd || family >= 0x1a;
  }();
  return fast;
#else
  return false;
#endif
}
}  // namespace

COZY_MULTIVERSION
void copy(const float* __restrict row, float* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = row[i];
}

void copy_by_string_move(const float* row, float* out, int64_t n) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  std::size_t bytes = static_cast<std::size_t>(n) * sizeof(float);
  asm volatile("rep movsb" : "+D"(out), "+S"(row), "+c"(bytes) : : "memory");
#else
  copy(row, out, n);
#endif
}

void stream_lines(const float* row, float* out, int64_t n) {
#if defined(__SSE2__)
  const auto address = reinterpret_cast<std::uintptr_t>(out);
  int64_t i = address % 4 == 0 ? std::min<int64_t>(n, static_cast<int64_t>((64 - address % 64) % 64 / 4)) : n;
  for (int64_t j = 0; j < i; ++j) out[j] = row[j];
  for (; i + 16 <= n; i += 16) {
    _mm_stream_ps(out + i, _mm_loadu_ps(row + i));
    _mm_stream_ps(out + i + 4, _mm_loadu_ps(row + i + 4));
    _mm_stream_ps(out + i + 8, _mm_loadu_ps(row + i + 8));
    _mm_stream_ps(out + i + 12, _mm_loadu_ps(row + i + 12));
  }
  for (; i < n; ++i) out[i] = row[i];
#else
  copy(row, out, n);
#endif
}

COZY_MULTIVERSION
void reverse(const float* __restrict row, float* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = row[n - 1 - i];
}

COZY_MULTIVERSION
void pad_plane(const float* __restrict src, int64_t src_stride, int64_t h, int64_t w, float* __restrict dst,
               int64_t top, int64_t left, int64_t right, int mode, float value, int64_t y_begin, int64_t y_end,
               bool stream) {
  const int64_t n = left + w + right;
  auto source_row = [&](int64_t y) -> int64_t {  // -1: a row of the constant
    const int64_t sy = y - top;
    if (sy >= 0 && sy < h) return sy;
    if (mode == kPadConstant) return -1;
    return mode == kPadReplicate ? (sy < 0 ? 0 : h - 1) : (sy < 0 ? -sy : 2 * (h - 1) - sy);
  };
  const bool apart = src_stride != w;  // a view's rows: the prefetchers lose them, so they are asked for
  const bool string_moves = fast_string_moves();
  for (int64_t y = y_begin; y < y_end; ++y) {
    float* __restrict out = dst + y * n;
    if (apart && y + 2 < y_end)
      if (const int64_t next = source_row(y + 2); next >= 0)
        for (int64_t j = 0; j < w; j += 16) __builtin_prefetch(src + next * src_stride + j);
    const int64_t sy = source_row(y);
    if (sy < 0) {
      for (int64_t j = 0; j < n; ++j) out[j] = value;
      continue;
    }
    const float* __restrict row = src + sy * src_stride;
    float* __restrict middle = out + left;
    if (stream)
      stream_lines(row, middle, w);
    else if (string_moves)
      copy_by_string_move(row, middle, w);
    else
      for (int64_t j = 0; j < w; ++j) middle[j] = row[j];
    if (mode == kPadReflect101) {  // out[left - k] = row[k], out[left + w - 1 + k] = row[w - 1 - k]
      for (int64_t k = 1; k <= left; ++k) out[left - k] = row[k];
      for (int64_t k = 1; k <= right; ++k) middle[w - 1 + k] = row[w - 1 - k];
    } else {
      const float l = mode == kPadConstant ? value : row[0], r = mode == kPadConstant ? value : row[w - 1];
      for (int64_t j = 0; j < left; ++j) out[j] = l;
      for (int64_t j = 0; j < right; ++j) middle[w + j] = r;
    }
  }
  if (stream) stream_fence();
}

#if defined(__SSE2__)
// Non-temporal stores, 4 floats at a time from the first 16-byte boundary
// (memory-bound either way, so SSE2 is enough). The row read forwards, the output written backwards: reading backwards
// while streaming runs at half the speed here.
void stream_reverse(const float* row, float* out, int64_t n) {
  int64_t i = 0;  // out[n - 1 - i] = row[i]
  for (; i < n && (reinterpret_cast<std::uintptr_t>(out + n - i) & 15) != 0; ++i) out[n - 1 - i] = row[i];
  for (; i + 4 <= n; i += 4) {
    const __m128 v = _mm_loadu_ps(row + i);
    _mm_stream_ps(out + n - 4 - i, _mm_shuffle_ps(v, v, _MM_SHUFFLE(0, 1, 2, 3)));
  }
  for (; i < n; ++i) out[n - 1 - i] = row[i];
}

void stream_fence() { _mm_sfence(); }

#else
void stream_reverse(const float* row, float* out, int64_t n) { reverse(row, out, n); }
void stream_fence() {}

#endif

namespace {
// The last-level cache one core sees: Linux's sysfs (sysconf's figure can be
// the whole socket's, 256 MiB for this machine's 32 MiB), else 32 MiB.
int64_t last_level_cache() {
  int64_t best = 0;
  int best_level = 0;
  for (int index = 0; index < 8; ++index) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/";
    std::ifstream level_file(dir + "level"), size_file(dir + "size");
    int level = 0;
    int64_t size = 0;
    std::string unit;
    if (!(level_file >> level) || !(size_file >> size)) continue;
    size_file >> unit;  // "32768K"
    if (unit == "K")
      size <<= 10;
    else if (unit == "M")
      size <<= 20;
    if (level >= best_level) best = size, best_level = level;
  }
  return best > 0 ? best : int64_t{32} << 20;
}
}  // namespace

bool streams(int64_t bytes) {
  if (const char* from = std::getenv("COZY_POSTPROCESS_STREAM_FROM")) return bytes > std::atoll(from);  // tests
  static const int64_t cache =
      std::getenv("COZY_POSTPROCESS_NO_STREAMING") ? INT64_MAX : last_level_cache();  // to compare both ways
  return bytes > cache;
}

namespace {
COZY_MULTIVERSION
void gather_plane(const float* __restrict row, const int32_t* __restrict index, float* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = row[index[i]];
}

COZY_MULTIVERSION
void gather_three(const float* __restrict r0, const float* __restrict r1, const float* __restrict r2,
                  const int32_t* __restrict index, float* __restrict o0, float* __restrict o1, float* __restrict o2,
                  int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const int32_t j = index[i];
    o0[i] = r0[j];
    o1[i] = r1[j];
    o2[i] = r2[j];
  }
}
}  // namespace

void gather(const float* const* rows, const int32_t* index, float* const* out, int planes, int64_t n) {
  if (planes == 3) return gather_three(rows[0], rows[1], rows[2], index, out[0], out[1], out[2], n);
  for (int c = 0; c < planes; ++c) gather_plane(rows[c], index, out[c], n);
}

namespace {
// OpenCV's bilinear weights for a fraction of k / 32 (initInterTab2D, float):
// 1 - f and f, multiplied for the four taps.
inline float fraction(int k) { return 1.f / 32 * static_cast<float>(k); }

// The gathers of a row's pixels whose four taps are inside, for one plane:
// no branch, so the AVX2 build vectorises them. Others have offset 0 and
// weights 0 here and are redone afterwards.
COZY_MULTIVERSION
void warp_gather(const float* __restrict p, float* __restrict out, const int32_t* __restrict offset,
                 const float* __restrict w0, const float* __restrict w1, const float* __restrict w2,
                 const float* __restrict w3, int64_t n, int32_t stride) {
  for (int64_t i = 0; i < n; ++i) {
    const int32_t o = offset[i];
    out[i] = clamp01(p[o] * w0[i] + p[o + 1] * w1[i] + p[o + stride] * w2[i] + p[o + stride + 1] * w3[i]);
  }
}

// Each pixel's first tap and four weights, for a block of a row: pixels whose
// taps are all inside get their offset and weights, others offset 0 and
// weights 0 and a 0 in `inside`. No branch, no compaction: it vectorises.
COZY_MULTIVERSION
void warp_weights(const int32_t* __restrict x32, const int32_t* __restrict y32, int64_t n, int32_t h, int32_t w,
                  int32_t stride, int32_t* __restrict offset, float* __restrict w0, float* __restrict w1,
                  float* __restrict w2, float* __restrict w3, int32_t* __restrict inside) {
  for (int64_t i = 0; i < n; ++i) {
    const int32_t x = x32[i], y = y32[i];
    const int32_t sx = x >> 5, sy = y >> 5;
    const float fy = fraction(y & 31), fx = fraction(x & 31);
    const bool in = sx >= 0 && sy >= 0 && sx < w - 1 && sy < h - 1;
    offset[i] = in ? sy * stride + sx : 0;
    w0[i] = in ? (1.f - fy) * (1.f - fx) : 0.f;
    w1[i] = in ? (1.f - fy) * fx : 0.f;
    w2[i] = in ? fy * (1.f - fx) : 0.f;
    w3[i] = in ? fy * fx : 0.f;
    inside[i] = in;
  }
}
}  // namespace

void warp_row(const float* const* src, float* const* dst, int planes, int64_t h, int64_t w, int64_t stride,
              const int32_t* x32, const int32_t* y32, int64_t n, float fill) {
  constexpr int64_t kBlock = 256;
  int32_t offset[kBlock], inside[kBlock];
  float w0[kBlock], w1[kBlock], w2[kBlock], w3[kBlock];
  // Under 2 x 2 no pixel has all four taps inside: all go to the loop below
  // (warp_gather would read p[stride + 1] for them, past a 1-row plane).
  const bool any_inside = h >= 2 && w >= 2;
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t count = std::min(kBlock, n - start);
    warp_weights(x32 + start, y32 + start, count, static_cast<int32_t>(h), static_cast<int32_t>(w),
                 static_cast<int32_t>(stride), offset, w0, w1, w2, w3, inside);
    for (int c = 0; c < planes && any_inside; ++c)
      warp_gather(src[c], dst[c] + start, offset, w0, w1, w2, w3, count, static_cast<int32_t>(stride));
    for (int64_t i = 0; i < count; ++i) {  // taps outside the image take the fill
      if (inside[i]) continue;
      const int32_t x = x32[start + i], y = y32[start + i];
      const int64_t sx = x >> 5, sy = y >> 5;
      if (sx >= w || sx + 1 < 0 || sy >= h || sy + 1 < 0) {
        for (int c = 0; c < planes; ++c) dst[c][start + i] = fill;
        continue;
      }
      const float fy = fraction(y & 31), fx = fraction(x & 31);
      const float weight[4] = {(1.f - fy) * (1.f - fx), (1.f - fy) * fx, fy * (1.f - fx), fy * fx};
      const bool x0 = sx >= 0, x1 = sx + 1 < w, y0 = sy >= 0, y1 = sy + 1 < h;
      for (int c = 0; c < planes; ++c) {
        const float* p = src[c];
        const float v0 = x0 && y0 ? p[sy * stride + sx] : fill;
        const float v1 = x1 && y0 ? p[sy * stride + sx + 1] : fill;
        const float v2 = x0 && y1 ? p[(sy + 1) * stride + sx] : fill;
        const float v3 = x1 && y1 ? p[(sy + 1) * stride + sx + 1] : fill;
        dst[c][start + i] = clamp01(v0 * weight[0] + v1 * weight[1] + v2 * weight[2] + v3 * weight[3]);
      }
    }
  }
}

int64_t interleaved_pitch(int64_t w) {
  int64_t lines = ((w + 2) * 4 + 15) / 16;  // 16 floats a 64-byte line
  if (lines % 2 == 0) ++lines;
  return lines * 16;
}

void interleave_row(const float* const* planes, float* out, int64_t w, float fill) {
  const float border[4] = {fill, fill, fill, 0.f};
  std::copy(border, border + 4, out);
  std::copy(border, border + 4, out + (w + 1) * 4);
  if (planes == nullptr) {  // a border row
    for (int64_t x = 1; x <= w; ++x) std::copy(border, border + 4, out + x * 4);
    return;
  }
  const float *r = planes[0], *g = planes[1], *b = planes[2];
  float* to = out + 4;
  int64_t x = 0;
#if defined(__SSE2__)
  for (; x + 4 <= w; x += 4, to += 16) {
    __m128 c0 = _mm_loadu_ps(r + x), c1 = _mm_loadu_ps(g + x), c2 = _mm_loadu_ps(b + x), c3 = _mm_setzero_ps();
    _MM_TRANSPOSE4_PS(c0, c1, c2, c3);
    _mm_storeu_ps(to, c0);
    _mm_storeu_ps(to + 4, c1);
    _mm_storeu_ps(to + 8, c2);
    _mm_storeu_ps(to + 12, c3);
  }
#endif
  for (; x < w; ++x, to += 4) {
    to[0] = r[x];
    to[1] = g[x];
    to[2] = b[x];
    to[3] = 0.f;
  }
}

void warp_row_interleaved(const float* image, int64_t pitch, int64_t h, int64_t w, const int32_t* x32,
                          const int32_t* y32, int64_t n, float* const* dst, float fill) {
  float *d0 = dst[0], *d1 = dst[1], *d2 = dst[2];
  for (int64_t i = 0; i < n; ++i) {
    const int32_t x = x32[i], y = y32[i];
    // The first tap in the bordered image: from -1 to w (h) its four taps
    // lie in the image or its border of fill; further out, all four are fill.
    const int64_t sx = (x >> 5) + 1, sy = (y >> 5) + 1;
    if (static_cast<uint64_t>(sx) > static_cast<uint64_t>(w) || static_cast<uint64_t>(sy) > static_cast<uint64_t>(h)) {
      d0[i] = d1[i] = d2[i] = fill;
      continue;
    }
    const float fx = fraction(x & 31), fy = fraction(y & 31);
    const float a = (1.f - fy) * (1.f - fx), b = (1.f - fy) * fx, c = fy * (1.f - fx), d = fy * fx;
    const float* t = image + sy * pitch + sx * 4;
#if defined(__SSE2__)
    __m128 v = _mm_add_ps(_mm_mul_ps(_mm_load_ps(t), _mm_set1_ps(a)), _mm_mul_ps(_mm_load_ps(t + 4), _mm_set1_ps(b)));
    v = _mm_add_ps(v, _mm_mul_ps(_mm_load_ps(t + pitch), _mm_set1_ps(c)));
    v = _mm_add_ps(v, _mm_mul_ps(_mm_load_ps(t + pitch + 4), _mm_set1_ps(d)));
    v = _mm_min_ps(_mm_set1_ps(1.f), _mm_max_ps(_mm_setzero_ps(), v));
    d0[i] = _mm_cvtss_f32(v);
    d1[i] = _mm_cvtss_f32(_mm_shuffle_ps(v, v, 1));
    d2[i] = _mm_cvtss_f32(_mm_shuffle_ps(v, v, 2));
#else
    const float* u = t + pitch;
    d0[i] = clamp01(t[0] * a + t[4] * b + u[0] * c + u[4] * d);
    d1[i] = clamp01(t[1] * a + t[5] * b + u[1] * c + u[5] * d);
    d2[i] = clamp01(t[2] * a + t[6] * b + u[2] * c + u[6] * d);
#endif
  }
}

}  // namespace cozy::postprocess::kernels
