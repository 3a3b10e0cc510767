#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <c10/util/Exception.h>
#include <malloc.h>
#include <sys/mman.h>
#include <torch/version.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cozy/host/memory.hpp>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define COZY_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define COZY_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define COZY_POISON(p, n) ((void)(p), (void)(n))
#define COZY_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace cozy::host {

struct LargeBlockPool::State {
  struct Block {
    void* ptr;
    std::size_t bytes;
  };
  std::size_t cache_limit;
  mutable std::mutex mutex;
  std::unordered_map<void*, std::size_t> live;  // block -> bytes
  std::list<Block> cached;                      // oldest first
  Stats stats;
};

namespace {

std::size_t round_to_pages(std::size_t bytes) {
  return (bytes + LargeBlockPool::kPage - 1) / LargeBlockPool::kPage * LargeBlockPool::kPage;
}

// `bytes` (whole pages) at an address aligned to a page, so that every page
// of the block can be a huge one; nullptr when the system refuses.
void* map_block(std::size_t bytes) {
  const std::size_t page = LargeBlockPool::kPage;
  void* raw = mmap(nullptr, bytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const auto start = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t aligned = (start + page - 1) / page * page;
  if (aligned > start) munmap(raw, aligned - start);
  if (const std::size_t tail = page - (aligned - start)) munmap(reinterpret_cast<void*>(aligned + bytes), tail);
  void* block = reinterpret_cast<void*>(aligned);
  // A hint: where transparent huge pages are off (or the kernel has none to
  // give), the block is made of small pages and works the same.
  madvise(block, bytes, MADV_HUGEPAGE);
  return block;
}

}  // namespace

LargeBlockPool::LargeBlockPool(std::size_t cache_limit) : state_(std::make_unique<State>()) {
  state_->cache_limit = cache_limit;
}

LargeBlockPool::~LargeBlockPool() { trim(); }

void* LargeBlockPool::allocate(std::size_t bytes) {
  const std::size_t size = round_to_pages(std::max(bytes, kMinBytes));
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    auto best = state_->cached.end();
    for (auto it = state_->cached.begin(); it != state_->cached.end(); ++it)
      if (it->bytes >= size && it->bytes <= size + size / 4 &&
          (best == state_->cached.end() || it->bytes < best->bytes))
        best = it;
    if (best != state_->cached.end()) {
      const State::Block block = *best;
      state_->cached.erase(best);
      state_->live.emplace(block.ptr, block.bytes);
      state_->stats.cached_bytes -= block.bytes;
      state_->stats.live_bytes += block.bytes;
      ++state_->stats.reused;
      COZY_UNPOISON(block.ptr, block.bytes);
      return block.ptr;
    }
  }
  void* block = map_block(size);
  if (!block) {
    trim();  // the cache's blocks may be what the system lacks
    block = map_block(size);
  }
  TORCH_CHECK(block, "cozy: not enough memory: could not map ", size, " bytes for a tensor");
  std::lock_guard<std::mutex> lock(state_->mutex);
  state_->live.emplace(block, size);
  state_->stats.live_bytes += size;
  ++state_->stats.mapped;
  return block;
}

bool LargeBlockPool::release(void* block) {
  std::vector<State::Block> evicted;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    const auto it = state_->live.find(block);
    if (it == state_->live.end()) return false;
    const std::size_t bytes = it->second;
    state_->live.erase(it);
    state_->stats.live_bytes -= bytes;
    if (bytes > state_->cache_limit) {  // would push out every other block and still not fit
      evicted.push_back({block, bytes});
      ++state_->stats.unmapped;
    } else {
      COZY_POISON(block, bytes);
      state_->cached.push_back({block, bytes});
      state_->stats.cached_bytes += bytes;
    }
    while (state_->stats.cached_bytes > state_->cache_limit) {
      evicted.push_back(state_->cached.front());
      state_->stats.cached_bytes -= state_->cached.front().bytes;
      state_->cached.pop_front();
      ++state_->stats.unmapped;
    }
  }
  for (const State::Block& b : evicted) {
    COZY_UNPOISON(b.ptr, b.bytes);
    munmap(b.ptr, b.bytes);
  }
  return true;
}

void LargeBlockPool::trim() {
  std::list<State::Block> evicted;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    evicted.swap(state_->cached);
    state_->stats.unmapped += evicted.size();
    state_->stats.cached_bytes = 0;
  }
  for (const State::Block& b : evicted) {
    COZY_UNPOISON(b.ptr, b.bytes);
    munmap(b.ptr, b.bytes);
  }
}

LargeBlockPool::Stats LargeBlockPool::stats() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  Stats s = state_->stats;
  s.live_blocks = state_->live.size();
  s.cached_blocks = state_->cached.size();
  return s;
}

// ------------------------------------------------- c10's CPU allocator

namespace {

LargeBlockPool* g_pool = nullptr;  // never freed: tensors may outlive main

// Every block this allocator hands out, large or small, is freed here: the
// pool's blocks are aligned to its page, so any other pointer goes straight
// to c10's free without a lookup.
void release_block(void* ptr) {
  if (reinterpret_cast<std::uintptr_t>(ptr) % LargeBlockPool::kPage == 0 && g_pool && g_pool->release(ptr)) return;
  c10::free_cpu(ptr);
}

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
#define COZY_ALLOCATE_CONST
#define COZY_COPY_DATA \
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }
#else
#define COZY_ALLOCATE_CONST const
#define COZY_COPY_DATA
#endif

class PooledCpuAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(std::size_t bytes) COZY_ALLOCATE_CONST override {
    void* ptr = bytes >= LargeBlockPool::kMinBytes ? g_pool->allocate(bytes) : c10::alloc_cpu(bytes);
    return {ptr, ptr, &release_block, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release_block; }
  COZY_COPY_DATA
};

}  // namespace

bool set_memory_policy(const MemoryPolicy& policy) {
  static std::once_flag once;
  bool applied = false;
  std::call_once(once, [&] {
    applied = true;
#if defined(__GLIBC__)
    if (policy.heap_for_large_blocks) mallopt(M_MMAP_MAX, 0);  // large blocks from the heap, reusable
    mallopt(M_TRIM_THRESHOLD, static_cast<int>(std::min<std::size_t>(policy.heap_keep_bytes, INT32_MAX)));
#endif
    if (!policy.large_pages) return;
    g_pool = new LargeBlockPool(policy.pool_cache_bytes);
    c10::SetCPUAllocator(new PooledCpuAllocator, /*priority=*/1);  // as g_pool, never freed
  });
  return applied;
}

std::size_t purge_memory() {
  std::size_t unmapped = 0;
  if (g_pool) {
    unmapped = g_pool->stats().cached_bytes;
    g_pool->trim();
  }
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
  return unmapped;
}

std::size_t resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long size = 0, resident = 0;
  const int read = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return read == 2 ? resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE)) : 0;
}

LargeBlockPool* large_block_pool() { return g_pool; }

}  // namespace cozy::host
