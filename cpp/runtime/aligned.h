// Aligned heap buffers (RAII) for packed weights, constants and run arenas.
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

// At least `align` bytes aligned (a power of two; 64 at least, for whole cache lines).
inline void* aligned_alloc_bytes(size_t bytes, size_t align = 64) {
  if (bytes == 0) bytes = 64;
  if (align < 64) align = 64;
  if (bytes >= kHugePageBytes && align < kHugePageBytes) align = kHugePageBytes;
  void* p = nullptr;
  if (posix_memalign(&p, align, bytes) != 0) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (align == kHugePageBytes) madvise(p, bytes, MADV_HUGEPAGE);  // advice only: errors ignored
#endif
  return p;
}

// A fixed-size aligned byte buffer: packed weights (whatever a packer lays out) and
// constants. Move-only.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  AlignedBuffer(size_t bytes, size_t align)
      : p_(static_cast<unsigned char*>(aligned_alloc_bytes(bytes, align))), n_(bytes) {}
  AlignedBuffer(AlignedBuffer&& o) noexcept
      : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    if (this != &o) {
      std::free(p_);
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { std::free(p_); }
  void* get() const { return p_; }
  template <class T>
  T* as() const { return reinterpret_cast<T*>(p_); }
  size_t size() const { return n_; }  // bytes

 private:
  unsigned char* p_ = nullptr;
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
    void* q = aligned_alloc_bytes(bytes);
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
