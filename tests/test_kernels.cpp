// The post-process plugin's row kernels (plugins/postprocess/kernels.cpp),
// compiled in here: every length and alignment, cached and streamed stores,
// against plain loops. The filters' tests use images too small to stream.
#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>
#include <vector>

#include "kernels.hpp"

namespace cozy::postprocess::kernels {
namespace {

using RowKernel = void (*)(const float*, float*, int64_t);

// Runs `kernel` from src + from to out + to for n = 0..40 and offsets 0..3
// floats (every 16-byte alignment) and compares with `expected(row, n, i)`.
template <class Expected>
void check_rows(RowKernel kernel, const char* name, const Expected& expected) {
  std::vector<float> source(64), target(64);
  std::iota(source.begin(), source.end(), 1.f);
  for (int64_t n = 0; n <= 40; ++n)
    for (int from = 0; from < 4; ++from)
      for (int to = 0; to < 4; ++to) {
        std::fill(target.begin(), target.end(), -1.f);
        kernel(source.data() + from, target.data() + to, n);
        stream_fence();
        for (int64_t i = 0; i < n; ++i)
          ASSERT_EQ(target[to + i], expected(source.data() + from, n, i))
              << name << " n " << n << " from " << from << " to " << to << " i " << i;
        for (int64_t i = 0; i < to; ++i) ASSERT_EQ(target[i], -1.f) << name << ": wrote before the row";
        for (int64_t i = to + n; i < 64; ++i) ASSERT_EQ(target[i], -1.f) << name << ": wrote past the row";
      }
}

TEST(Kernels, RowCopiesAtEveryLengthAndAlignment) {
  auto same = [](const float* row, int64_t, int64_t i) { return row[i]; };
  auto mirrored = [](const float* row, int64_t n, int64_t i) { return row[n - 1 - i]; };
  check_rows(copy, "copy", same);
  check_rows(stream_copy, "stream_copy", same);
  check_rows(reverse, "reverse", mirrored);
  check_rows(stream_reverse, "stream_reverse", mirrored);
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
