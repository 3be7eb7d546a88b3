// 64-byte aligned heap buffers (RAII) for packed weights and run arenas.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#if defined(__linux__)
#include <sys/mman.h>
#endif
#include <utility>

namespace pyrt {

// Buffers of at least this size go on 2 MiB boundaries and ask Linux for transparent
// huge pages (where THP is "madvise", as on many distributions, nothing else gets
// them): a batch-1 layer streams its whole packed weight once per call, and with 4 KiB
// pages every 4 KiB of it costs a TLB miss (numpy does the same for its arrays).
constexpr size_t kHugePageBytes = size_t(2) << 20;

inline void* aligned_alloc64(size_t bytes) {
  if (bytes == 0) bytes = 64;
  void* p = nullptr;
  const size_t align = bytes >= kHugePageBytes ? kHugePageBytes : 64;
  if (posix_memalign(&p, align, bytes) != 0) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (align == kHugePageBytes) madvise(p, bytes, MADV_HUGEPAGE);  // advice only: errors ignored
#endif
  return p;
}

// A fixed-size aligned float array.
class AlignedFloats {
 public:
  AlignedFloats() = default;
  explicit AlignedFloats(size_t n)
      : p_(static_cast<float*>(aligned_alloc64(n > SIZE_MAX / sizeof(float) ? throw std::bad_alloc()
                                                                          : n * sizeof(float)))),
        n_(n) {}
  AlignedFloats(AlignedFloats&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  AlignedFloats& operator=(AlignedFloats&& o) noexcept {
    if (this != &o) {
      std::free(p_);
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  AlignedFloats(const AlignedFloats&) = delete;
  AlignedFloats& operator=(const AlignedFloats&) = delete;
  ~AlignedFloats() { std::free(p_); }
  float* get() const { return p_; }
  size_t size() const { return n_; }

 private:
  float* p_ = nullptr;
  size_t n_ = 0;
};

// A growable aligned byte buffer (a run arena); contents are not preserved on growth.
class AlignedBytes {
 public:
  AlignedBytes() = default;
  AlignedBytes(const AlignedBytes&) = delete;
  AlignedBytes& operator=(const AlignedBytes&) = delete;
  ~AlignedBytes() { std::free(p_); }
  void reserve(size_t bytes) {
    if (bytes <= cap_) return;
    void* q = aligned_alloc64(bytes);
    std::free(p_);
    p_ = static_cast<unsigned char*>(q);
    cap_ = bytes;
  }
  unsigned char* get() const { return p_; }
  size_t capacity() const { return cap_; }

 private:
  unsigned char* p_ = nullptr;
  size_t cap_ = 0;
};

}  // namespace pyrt
