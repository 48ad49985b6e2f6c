// A growable float buffer, 64-byte aligned: the clamp scratch, and the VM's aligned input copy.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>

namespace kd_edge {

class AlignedBuffer {
 public:
  static constexpr std::size_t kAlignment = 64;
  float* data() const { return data_.get(); }
  // Grows (allocating) only when n_floats exceeds what it holds.
  void reserve(std::size_t n_floats) {
    if (n_floats > capacity_) {
      const std::size_t bytes = (n_floats * sizeof(float) + kAlignment - 1) / kAlignment * kAlignment;
      float* p = static_cast<float*>(std::aligned_alloc(kAlignment, bytes));
      if (p == nullptr) throw std::bad_alloc();
      data_.reset(p);
      capacity_ = bytes / sizeof(float);
    }
  }

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float, Free> data_;
  std::size_t capacity_ = 0;
};

}  // namespace kd_edge
