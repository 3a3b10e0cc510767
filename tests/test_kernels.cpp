// The post-process plugin's row kernels (plugins/postprocess/kernels.cpp),
// compiled in here: every length and alignment, cached and streamed stores,
// against plain loops. The filters' tests use images too small to stream.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <numeric>
#include <vector>

#include "kernels.hpp"

namespace cozy::postprocess::kernels {
namespace {

using RowKernel = void (*)(const float*, float*, int64_t);

// Runs `kernel` from src + from to out + to for n = 0..80, `from` 0..3
// floats (every 16-byte alignment of the source) and `to` 0..15 floats
// (every 4-byte place in a 64-byte line, whole lines inside the row from n
// = 16 on) and compares with `expected(row, n, i)`.
template <class Expected>
void check_rows(RowKernel kernel, const char* name, const Expected& expected) {
  constexpr int64_t kSize = 128;
  alignas(64) float source[kSize], target[kSize];
  std::iota(source, source + kSize, 1.f);
  for (int64_t n = 0; n <= 80; ++n)
    for (int from = 0; from < 4; ++from)
      for (int to = 0; to < 16; ++to) {
        std::fill(target, target + kSize, -1.f);
        kernel(source + from, target + to, n);
        stream_fence();
        for (int64_t i = 0; i < n; ++i)
          ASSERT_EQ(target[to + i], expected(source + from, n, i))
              << name << " n " << n << " from " << from << " to " << to << " i " << i;
        for (int64_t i = 0; i < to; ++i) ASSERT_EQ(target[i], -1.f) << name << ": wrote before the row";
        for (int64_t i = to + n; i < kSize; ++i) ASSERT_EQ(target[i], -1.f) << name << ": wrote past the row";
      }
}

TEST(Kernels, RowCopiesAtEveryLengthAndAlignment) {
  auto same = [](const float* row, int64_t, int64_t i) { return row[i]; };
  auto mirrored = [](const float* row, int64_t n, int64_t i) { return row[n - 1 - i]; };
  check_rows(copy, "copy", same);
  check_rows(copy_by_string_move, "copy_by_string_move", same);
  check_rows(stream_lines, "stream_lines", same);
  check_rows(reverse, "reverse", mirrored);
  check_rows(stream_reverse, "stream_reverse", mirrored);
}

// pad_plane against the definition (output pixel (y, x) is the source pixel
// at the mode's row and column; the constant outside for kPadConstant), on
// planes whose copied rows start at every 4-byte place in a 64-byte line and
// hold whole lines or none, bands that start and end inside the plane, a
// view's rows (stride above w), cached and streamed.
TEST(Kernels, PadPlaneInEveryModeAlignmentAndBand) {
  auto index = [](int64_t i, int64_t n, int mode) -> int64_t {  // -1: the constant
    if (i >= 0 && i < n) return i;
    if (mode == kPadConstant) return -1;
    if (mode == kPadReplicate) return i < 0 ? 0 : n - 1;
    return i < 0 ? -i : 2 * (n - 1) - i;
  };
  constexpr float kValue = -7.f;
  const int64_t h = 6;
  for (int64_t w : {3, 7, 16, 17, 35, 64, 70})
    for (int64_t stride : {w, w + 5}) {
      std::vector<float> source(static_cast<std::size_t>(h * stride));
      std::iota(source.begin(), source.end(), 1.f);
      for (int mode : {kPadConstant, kPadReplicate, kPadReflect101})
        for (std::array<int64_t, 4> p : {std::array<int64_t, 4>{0, 0, 0, 0}, std::array<int64_t, 4>{1, 2, 2, 0},
                                         std::array<int64_t, 4>{2, 13, 1, 2}, std::array<int64_t, 4>{16, 16, 5, 5}})
          for (int64_t offset = 0; offset < 16; ++offset)
            for (bool stream : {false, true}) {
              const int64_t left = std::min(p[0], w - 1), right = std::min(p[1], w - 1), top = p[2], bottom = p[3];
              const int64_t out_h = h + top + bottom, out_w = left + w + right;
              std::vector<float> storage(static_cast<std::size_t>(out_h * out_w + 32), 99.f);
              float* base = storage.data();
              while (reinterpret_cast<std::uintptr_t>(base) % 64 != 0) ++base;  // then `offset` floats on
              float* dst = base + offset;
              // Two bands: rows [0, 3) and [3, out_h).
              pad_plane(source.data(), stride, h, w, dst, top, left, right, mode, kValue, 0, 3, stream);
              pad_plane(source.data(), stride, h, w, dst, top, left, right, mode, kValue, 3, out_h, stream);
              for (int64_t y = 0; y < out_h; ++y)
                for (int64_t x = 0; x < out_w; ++x) {
                  const int64_t sy = index(y - top, h, mode), sx = index(x - left, w, mode);
                  const float want = sy < 0 || sx < 0 ? kValue : source[static_cast<std::size_t>(sy * stride + sx)];
                  ASSERT_EQ(dst[y * out_w + x], want)
                      << "w " << w << " stride " << stride << " mode " << mode << " pad " << left << "," << right << ","
                      << top << "," << bottom << " offset " << offset << " stream " << stream << " at " << y << ","
                      << x;
                }
              for (float* q = storage.data(); q < dst; ++q) ASSERT_EQ(*q, 99.f) << "wrote before the plane";
              for (float* q = dst + out_h * out_w; q < storage.data() + storage.size(); ++q)
                ASSERT_EQ(*q, 99.f) << "wrote past the plane";
            }
    }
}

TEST(Kernels, GatherOneTwoAndThreePlanes) {
  std::vector<float> a(50), b(50), c(50);
  std::iota(a.begin(), a.end(), 0.f);
  std::iota(b.begin(), b.end(), 100.f);
  std::iota(c.begin(), c.end(), 200.f);
  const std::vector<int32_t> index = {0, 0, 3, 7, 7, 49, 12, 1, 25};
  for (int planes = 1; planes <= 3; ++planes) {
    std::vector<std::vector<float>> out(3, std::vector<float>(index.size(), -1.f));
    const float* rows[3] = {a.data(), b.data(), c.data()};
    float* outs[3] = {out[0].data(), out[1].data(), out[2].data()};
    gather(rows, index.data(), outs, planes, static_cast<int64_t>(index.size()));
    for (int p = 0; p < 3; ++p)
      for (std::size_t i = 0; i < index.size(); ++i)
        EXPECT_EQ(out[p][i], p < planes ? rows[p][index[i]] : -1.f) << "planes " << planes << " plane " << p;
  }
}

TEST(Kernels, LumaIsBt601) {
  const std::vector<float> r = {0.f, 1.f, 0.f, 0.f, 0.25f}, g = {0.f, 0.f, 1.f, 0.f, 0.5f},
                           b = {0.f, 0.f, 0.f, 1.f, 0.75f};
  std::vector<float> out(r.size(), -1.f);
  luma(r.data(), g.data(), b.data(), out.data(), static_cast<int64_t>(r.size()));
  for (std::size_t i = 0; i < r.size(); ++i)
    EXPECT_FLOAT_EQ(out[i], 0.299f * r[i] + 0.587f * g[i] + 0.114f * b[i]) << i;
  EXPECT_FLOAT_EQ(out[1], 0.299f);
  EXPECT_FLOAT_EQ(out[3], 0.114f);
}

TEST(Kernels, OnlyOutputsLargerThanTheLastLevelCacheStream) {
  EXPECT_FALSE(streams(1 << 20));          // 1 MiB stays in any last-level cache
  EXPECT_TRUE(streams(int64_t{1} << 40));  // 1 TiB is larger than any
}

}  // namespace
}  // namespace cozy::postprocess::kernels
