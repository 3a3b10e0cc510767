// How the host process keeps memory between nodes: tensors of a batch are
// tens of MiB, and a graph makes and drops them at every node.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace cozy::host {

/// Large CPU tensors (at least `LargeBlockPool::kMinBytes`) in blocks of
/// whole 2 MiB pages, marked for transparent huge pages (MADV_HUGEPAGE) and
/// kept for reuse when freed, as a GStreamer buffer pool keeps its frames.
///
/// Why: a filter's pass over a batch of 16 RGB 512 x 512 images reads 48 MiB
/// and writes 48 MiB. In 4 KiB pages that is 24,576 translations, more than
/// the CPU's TLB holds, each a page walk (two levels of them in a virtual
/// machine); in 2 MiB pages, 48. And a freed batch handed back to the system
/// is paid again as page faults by the next one: glibc maps every block over
/// 32 MiB on its own and unmaps it on free.
///
/// A request is rounded up to whole 2 MiB pages; a cached block serves it if
/// it is that size or up to a quarter larger (the smallest such). Freed
/// blocks are kept up to `cache_limit` bytes, the oldest unmapped first; a
/// block larger than the limit is unmapped when freed.
/// Thread-safe. Smaller requests go to c10's allocator as before.
class LargeBlockPool {
 public:
  static constexpr std::size_t kPage = std::size_t{2} << 20;
  static constexpr std::size_t kMinBytes = std::size_t{4} << 20;

  struct Stats {
    std::size_t live_blocks = 0, live_bytes = 0;
    std::size_t cached_blocks = 0, cached_bytes = 0;
    std::uint64_t mapped = 0;  ///< blocks asked of the system so far
    std::uint64_t reused = 0;  ///< requests served from the cache so far
    std::uint64_t unmapped = 0;
  };

  explicit LargeBlockPool(std::size_t cache_limit);
  ~LargeBlockPool();  ///< unmaps the cache; live blocks must be gone
  LargeBlockPool(const LargeBlockPool&) = delete;
  LargeBlockPool& operator=(const LargeBlockPool&) = delete;

  /// A block of at least `bytes` and at least kMinBytes, aligned to kPage.
  /// Throws c10::Error when the system has no memory left, after unmapping
  /// the cache.
  void* allocate(std::size_t bytes);
  /// Back to the cache. Returns false (and does nothing) for a pointer that
  /// is not a live block of this pool.
  bool release(void* block);
  /// Unmaps every cached block.
  void trim();
  Stats stats() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

/// How a host process keeps memory between nodes. Process-wide (it sets
/// glibc's malloc and replaces LibTorch's CPU allocator), so the library
/// never applies one by itself: the program decides, once, early (tensors
/// made before keep their own allocator's memory).
struct MemoryPolicy {
  /// glibc serves large blocks from the heap instead of one mmap each (so a
  /// freed batch is reused, not unmapped and faulted in again); the heap
  /// then grows and shrinks only at its top.
  bool heap_for_large_blocks = true;
  /// Free memory at the heap's top that glibc keeps instead of returning.
  std::size_t heap_keep_bytes = std::size_t{256} << 20;
  /// Tensors of at least LargeBlockPool::kMinBytes from a LargeBlockPool in
  /// 2 MiB pages, installed as c10's CPU allocator.
  bool large_pages = true;
  /// Freed pool blocks kept for reuse.
  std::size_t pool_cache_bytes = std::size_t{256} << 20;

  /// One run, then exit (`cozy run`): keep everything freed for the next node.
  static MemoryPolicy batch(bool large_pages = true) {
    MemoryPolicy p;
    p.large_pages = large_pages;
    return p;
  }
  /// A process that lives on between runs (`cozy serve`): large blocks are
  /// mapped and unmapped by glibc as usual, so memory goes back to the
  /// system when a prompt ends; the pool keeps a bounded cache, emptied by
  /// purge_memory().
  static MemoryPolicy service(bool large_pages = true) {
    MemoryPolicy p;
    p.heap_for_large_blocks = false;
    p.heap_keep_bytes = std::size_t{32} << 20;
    p.large_pages = large_pages;
    p.pool_cache_bytes = std::size_t{128} << 20;
    return p;
  }
};

/// Applies `policy` to this process. The first call wins; later calls
/// change nothing and return false.
bool set_memory_policy(const MemoryPolicy& policy);

/// set_memory_policy(MemoryPolicy::batch(large_pages)).
inline void keep_freed_memory(bool large_pages = true) { set_memory_policy(MemoryPolicy::batch(large_pages)); }

/// Gives memory kept for reuse back to the system: the pool's cached blocks
/// are unmapped and glibc's free heap trimmed (what ComfyUI's POST /free
/// asks for). Returns the bytes the pool unmapped. Safe at any time; tensors
/// alive stay where they are.
std::size_t purge_memory();

/// This process's resident set, in bytes (from /proc/self/statm).
std::size_t resident_bytes();

/// The pool keep_freed_memory installed, or nullptr.
LargeBlockPool* large_block_pool();

}  // namespace cozy::host
