// 64-byte aligned heap buffers (RAII) for packed weights and run arenas.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <utility>

namespace pyrt {

inline void* aligned_alloc64(size_t bytes) {
  if (bytes == 0) bytes = 64;
  void* p = nullptr;
  if (posix_memalign(&p, 64, bytes) != 0) throw std::bad_alloc();
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
