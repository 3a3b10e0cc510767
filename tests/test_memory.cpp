// The host's pool of large blocks (host/src/memory.cpp), alone and as
// LibTorch's CPU allocator.
#include <ATen/ATen.h>
#include <c10/core/CPUAllocator.h>
#include <gtest/gtest.h>

#include <cozy/host/memory.hpp>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

namespace {

using cozy::host::LargeBlockPool;
constexpr std::size_t MiB = std::size_t{1} << 20;

bool page_aligned(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % LargeBlockPool::kPage == 0; }

TEST(LargeBlockPool, ReusesAFreedBlockAlignedToItsPage) {
  LargeBlockPool pool(64 * MiB);
  void* a = pool.allocate(5 * MiB);
  EXPECT_TRUE(page_aligned(a));
  std::memset(a, 7, 5 * MiB);                   // every byte asked for is there
  EXPECT_EQ(pool.stats().live_bytes, 6 * MiB);  // whole 2 MiB pages
  ASSERT_TRUE(pool.release(a));
  EXPECT_EQ(pool.stats().cached_bytes, 6 * MiB);
  void* b = pool.allocate(5 * MiB + 12345);  // the same pages
  EXPECT_EQ(b, a);
  const LargeBlockPool::Stats s = pool.stats();
  EXPECT_EQ(s.mapped, 1u);
  EXPECT_EQ(s.reused, 1u);
  EXPECT_EQ(s.live_blocks, 1u);
  EXPECT_EQ(s.cached_blocks, 0u);
  pool.release(b);
}

TEST(LargeBlockPool, ServesFromBlocksAtMostAQuarterLarger) {
  LargeBlockPool pool(256 * MiB);
  void* big = pool.allocate(16 * MiB);
  pool.release(big);
  void* half = pool.allocate(8 * MiB);  // 16 MiB would waste half: a new block
  EXPECT_NE(half, big);
  EXPECT_EQ(pool.stats().mapped, 2u);
  void* near = pool.allocate(14 * MiB);  // 16 is within 14 + 14 / 4
  EXPECT_EQ(near, big);
  // Of two that fit, the smaller.
  void* larger = pool.allocate(20 * MiB);
  pool.release(larger);
  pool.release(near);
  EXPECT_EQ(pool.allocate(16 * MiB), big);
  pool.release(big);
  pool.release(half);
}

TEST(LargeBlockPool, KeepsAtMostItsLimitUnmappingTheOldestFirst) {
  LargeBlockPool pool(12 * MiB);
  void* a = pool.allocate(4 * MiB);
  void* b = pool.allocate(6 * MiB);
  void* c = pool.allocate(8 * MiB);
  pool.release(a);
  pool.release(b);  // 10 MiB kept
  pool.release(c);  // 18 MiB: a goes, 14 MiB, then b, 8 MiB
  const LargeBlockPool::Stats s = pool.stats();
  EXPECT_EQ(s.cached_blocks, 1u);
  EXPECT_EQ(s.cached_bytes, 8 * MiB);
  EXPECT_EQ(s.unmapped, 2u);
  EXPECT_EQ(pool.allocate(8 * MiB), c);
  pool.release(c);
  // A block larger than the whole limit goes back to the system at once,
  // and the blocks kept stay.
  pool.release(pool.allocate(16 * MiB));
  EXPECT_EQ(pool.stats().cached_blocks, 1u);
  EXPECT_EQ(pool.stats().cached_bytes, 8 * MiB);
  EXPECT_EQ(pool.stats().unmapped, 3u);
  pool.trim();
  EXPECT_EQ(pool.stats().cached_blocks, 0u);
  EXPECT_EQ(pool.stats().cached_bytes, 0u);
  EXPECT_EQ(pool.stats().unmapped, 4u);
}

TEST(LargeBlockPool, RefusesPointersThatAreNotItsLiveBlocks) {
  LargeBlockPool pool(64 * MiB);
  void* own = pool.allocate(4 * MiB);
  void* other = std::malloc(64);
  EXPECT_FALSE(pool.release(other));
  EXPECT_FALSE(pool.release(static_cast<char*>(own) + 64));
  EXPECT_TRUE(pool.release(own));
  EXPECT_FALSE(pool.release(own));  // already back in the cache
  std::free(other);
}

TEST(LargeBlockPool, SaysWhenTheSystemHasNoMemory) {
  LargeBlockPool pool(64 * MiB);
  try {
    pool.allocate(std::size_t{1} << 60);  // an exbibyte
    FAIL() << "allocated an exbibyte";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("not enough memory"), std::string::npos) << e.what();
  }
  EXPECT_EQ(pool.stats().live_blocks, 0u);
}

TEST(LargeBlockPool, CachedBlocksArePoisonedForAddressSanitizer) {
#if defined(__SANITIZE_ADDRESS__)
  LargeBlockPool pool(64 * MiB);
  auto* block = static_cast<volatile char*>(pool.allocate(4 * MiB));
  block[100] = 1;
  pool.release(const_cast<char*>(block));
  EXPECT_DEATH(block[100] = 2, "use-after-poison");
  auto* again = static_cast<volatile char*>(pool.allocate(4 * MiB));  // the same block, writable again
  EXPECT_EQ(again, block);
  again[100] = 3;
  pool.release(const_cast<char*>(again));
#else
  GTEST_SKIP() << "the cache's blocks are poisoned only in AddressSanitizer builds (preset asan)";
#endif
}

// The kernel's view of the mapping that holds `p`: its smaps entry.
std::string smaps_entry(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  const auto address = reinterpret_cast<std::uintptr_t>(p);
  std::string line, entry;
  bool inside = false;
  while (std::getline(smaps, line)) {
    std::uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> lo >> dash >> hi && dash == '-' && line.find(':') > line.find(' ')) {
      if (inside) break;
      inside = lo <= address && address < hi;
    }
    if (inside) entry += line + "\n";
  }
  return entry;
}

TEST(LargeBlockPool, MarksItsBlocksForHugePages) {
  std::ifstream setting("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string modes((std::istreambuf_iterator<char>(setting)), std::istreambuf_iterator<char>());
  if (modes.empty() || modes.find("[never]") != std::string::npos)
    GTEST_SKIP() << "this kernel has transparent huge pages off (" << modes << ")";
  LargeBlockPool pool(64 * MiB);
  void* block = pool.allocate(8 * MiB);
  const std::string entry = smaps_entry(block);
  ASSERT_FALSE(entry.empty()) << "no mapping holds the block";
  if (entry.find("THPeligible:") == std::string::npos) {
    pool.release(block);
    GTEST_SKIP() << "this kernel's smaps has no THPeligible line";
  }
  // "THPeligible: 1", and "hg" (MADV_HUGEPAGE) among the VmFlags.
  std::istringstream lines(entry);
  std::string eligible, flags;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("THPeligible:", 0) == 0) eligible = line.substr(12);
    if (line.rfind("VmFlags:", 0) == 0) flags = line.substr(8) + " ";
  }
  EXPECT_EQ(eligible.substr(eligible.find_first_not_of(' ')), "1") << entry;
  EXPECT_NE(flags.find(" hg "), std::string::npos) << entry;
  pool.release(block);
}

// Installs the pool for the rest of this process: ctest runs each test of
// this binary in a process of its own.
TEST(LargeBlockPool, ServesLibTorchsLargeTensorsOnceInstalled) {
  const at::Tensor before = at::ones({16, 3, 512, 512});  // c10's own block, freed after installing
  cozy::host::keep_freed_memory();
  cozy::host::keep_freed_memory();  // a second call changes nothing
  LargeBlockPool* pool = cozy::host::large_block_pool();
  ASSERT_NE(pool, nullptr);
  const LargeBlockPool::Stats start = pool->stats();
  const void* first = nullptr;
  {
    at::Tensor batch = at::empty({16, 3, 512, 512});
    first = batch.data_ptr();
    EXPECT_TRUE(page_aligned(first));
    EXPECT_EQ(pool->stats().live_blocks, start.live_blocks + 1);
    batch.copy_(before);
    EXPECT_EQ(batch.sum().item<double>(), 16.0 * 3 * 512 * 512);
  }
  EXPECT_EQ(pool->stats().cached_blocks, start.cached_blocks + 1);
  at::Tensor again = at::zeros({16, 3, 512, 512});
  EXPECT_EQ(again.data_ptr(), first);
  EXPECT_EQ(again.sum().item<double>(), 0.0);
  at::Tensor small = at::ones({1000});  // under kMinBytes: c10's allocator
  EXPECT_EQ(pool->stats().live_blocks, start.live_blocks + 1);
  EXPECT_EQ(small.sum().item<float>(), 1000.f);
  // raw_allocate / raw_deallocate, as some LibTorch code calls them.
  c10::Allocator* allocator = c10::GetCPUAllocator();
  void* raw_large = allocator->raw_allocate(8 * MiB);
  void* raw_small = allocator->raw_allocate(100);
  EXPECT_EQ(pool->stats().live_blocks, start.live_blocks + 2);
  allocator->raw_deallocate(raw_large);
  allocator->raw_deallocate(raw_small);
  EXPECT_EQ(pool->stats().live_blocks, start.live_blocks + 1);
}

// What POST /free asks for: the pool's cached blocks go back to the system.
TEST(Memory, PurgeGivesWhatThePoolKeptBackToTheSystem) {
  cozy::host::set_memory_policy(cozy::host::MemoryPolicy::service());
  LargeBlockPool* pool = cozy::host::large_block_pool();
  ASSERT_NE(pool, nullptr);
  cozy::host::purge_memory();
  const std::size_t base = cozy::host::resident_bytes();
  ASSERT_GT(base, 0u);
  { const at::Tensor big = at::ones({static_cast<std::int64_t>(64 * MiB / sizeof(float))}); }
  const std::size_t kept = cozy::host::resident_bytes();
  EXPECT_GE(pool->stats().cached_bytes, 64 * MiB);
  EXPECT_GE(kept, base + 48 * MiB) << "the freed block is kept, resident, for reuse";
  EXPECT_GE(cozy::host::purge_memory(), 64 * MiB);
  EXPECT_EQ(pool->stats().cached_bytes, 0u);
  const std::size_t after = cozy::host::resident_bytes();
  EXPECT_LE(after + 48 * MiB, kept) << "resident " << kept / MiB << " MiB before the purge, " << after / MiB << " after";
}

}  // namespace
