// consumer ARTIFACT_DIR: one point at the centre of the training domain, printed.
#include <kd_edge/solver.hpp>

#include <cstdio>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: consumer ARTIFACT_DIR\n");
    return 2;
  }
  try {
    kd_edge::SolverOptions options;
    options.threads = 1;
    kd_edge::Solver solver(argv[1], options);
    const auto& info = solver.info();
    std::vector<float> in(solver.n_inputs()), out(solver.n_outputs());
    for (std::size_t i = 0; i < in.size(); ++i) in[i] = info.lower.empty() ? 0.0f : 0.5f * (info.lower[i] + info.upper[i]);
    solver.predict(in.data(), 1, out.data());
    for (std::size_t i = 0; i < out.size(); ++i) std::printf("%s %.6f\n", info.output_names[i].c_str(), out[i]);
  } catch (const kd_edge::Error& e) {
    std::fprintf(stderr, "consumer: %s\n", e.what());
    return 1;
  }
  return 0;
}
