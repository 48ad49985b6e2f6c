// A fixed-size Eigen MLP, the approach RTNeural takes: each layer an Eigen::Matrix<float, OUT, IN>
// known at compile time, weights loaded at run time, built with -O3 -march=native. A peer for the
// latency benchmark, not part of kd-edge. Shapes are instantiated in point_latency.cpp.
#pragma once

#include <Eigen/Dense>
#include <cmath>
#include <istream>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

namespace peer {

// One dense layer with its activation per unit ("tanh", "sin" or "identity").
template <int IN, int OUT>
struct Dense {
  Eigen::Matrix<float, OUT, IN> weight;
  Eigen::Matrix<float, OUT, 1> bias;
  std::vector<std::string> activations;
  bool all_tanh = false;

  bool read(std::istream& s) {
    int in = 0, out = 0;
    if (!(s >> in >> out) || in != IN || out != OUT) return false;
    activations.resize(OUT);
    for (auto& a : activations) s >> a;
    for (int j = 0; j < OUT; ++j)
      for (int k = 0; k < IN; ++k) s >> weight(j, k);
    for (int j = 0; j < OUT; ++j) s >> bias(j);
    all_tanh = true;
    for (auto& a : activations) all_tanh = all_tanh && a == "tanh";
    return static_cast<bool>(s);
  }

  Eigen::Matrix<float, OUT, 1> forward(const Eigen::Matrix<float, IN, 1>& x) const {
    Eigen::Matrix<float, OUT, 1> y = weight * x + bias;
    if (all_tanh) return y.array().tanh().matrix();  // Eigen's vectorised float tanh
    for (int j = 0; j < OUT; ++j) {
      if (activations[j] == "tanh") y(j) = std::tanh(y(j));
      else if (activations[j] == "sin") y(j) = std::sin(y(j));
    }
    return y;
  }
};

// The network for widths W0 -> W1 -> ... -> Wn.
template <int... W>
class Mlp;

template <int A, int B>
class Mlp<A, B> {
 public:
  bool read(std::istream& s) { return layer_.read(s); }
  Eigen::Matrix<float, B, 1> forward(const Eigen::Matrix<float, A, 1>& x) const { return layer_.forward(x); }
  static constexpr int kIn = A, kOut = B;

 private:
  Dense<A, B> layer_;
};

template <int A, int B, int C, int... Rest>
class Mlp<A, B, C, Rest...> {
 public:
  bool read(std::istream& s) { return layer_.read(s) && rest_.read(s); }
  auto forward(const Eigen::Matrix<float, A, 1>& x) const { return rest_.forward(layer_.forward(x)); }
  static constexpr int kIn = A, kOut = Mlp<B, C, Rest...>::kOut;

 private:
  Dense<A, B> layer_;
  Mlp<B, C, Rest...> rest_;
};

// A type-erased model: predict(in, n, out) point by point, as a control loop calls it.
class Model {
 public:
  virtual ~Model() = default;
  virtual void predict(const float* in, std::size_t n, float* out) const = 0;
};

template <int... W>
class FixedModel final : public Model {
 public:
  using Net = Mlp<W...>;
  bool read(std::istream& s) { return net_.read(s); }
  void predict(const float* in, std::size_t n, float* out) const override {
    for (std::size_t p = 0; p < n; ++p) {
      Eigen::Map<const Eigen::Matrix<float, Net::kIn, 1>> x(in + p * Net::kIn);
      Eigen::Map<Eigen::Matrix<float, Net::kOut, 1>>(out + p * Net::kOut) = net_.forward(x);
    }
  }

 private:
  Net net_;
};

}  // namespace peer
