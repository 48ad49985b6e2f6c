// C++ runtime tests without Python: parity with PyTorch on golden data, the C API, the
// input and output policies, shared artifacts, and refusal of damaged or mismatched artifacts.
//   test_runtime GOLDEN_DIR   (written by make_golden.py)
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "kd_edge/c_api.h"
#include "kd_edge/solver.hpp"

namespace fs = std::filesystem;

static int failures = 0;
#define CHECK(cond, msg)                                                              \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      ++failures;                                                                     \
      std::fprintf(stderr, "FAIL %s:%d: %s -- %s\n", __FILE__, __LINE__, #cond, msg); \
    }                                                                                 \
  } while (0)

static std::vector<float> read_f32(const fs::path& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  std::vector<float> v(static_cast<std::size_t>(f.tellg()) / sizeof(float));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(float)));
  return v;
}

static std::string read_text(const fs::path& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

static void write_text(const fs::path& path, const std::string& text) { std::ofstream(path) << text; }

static std::string replace(std::string s, const std::string& from, const std::string& to) {
  auto at = s.find(from);
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

// Message of the kd_edge::Error that opening `dir` throws, with its kind; "" if it opens.
static std::string open_error(const fs::path& dir, kd_edge::ErrorKind* kind = nullptr) {
  try {
    kd_edge::Solver solver(dir.string());
  } catch (const kd_edge::Error& e) {
    if (kind) *kind = e.kind();
    return e.what();
  }
  return "";
}

static bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

static void test_sha256(const fs::path& tmp) {
  struct Case { std::string text; const char* digest; };
  const Case cases[] = {
      {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
      {std::string(1000000, 'a'), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"}};
  for (const auto& c : cases) {
    fs::path file = tmp / "sha_input";
    std::ofstream(file, std::ios::binary) << c.text;
    CHECK(kd_edge::sha256_file(file.string()) == c.digest, ("sha256 of a " + std::to_string(c.text.size()) + "-byte input").c_str());
  }
}

static void test_golden(const fs::path& golden) {
  std::ifstream index(golden / "index.txt");
  std::string name;
  std::size_t n_in, n_out, n, cases = 0;
  while (index >> name >> n_in >> n_out >> n) {
    kd_edge::Solver solver((golden / name).string());
    CHECK(solver.n_inputs() == n_in && solver.n_outputs() == n_out, name.c_str());
    std::vector<float> x = read_f32(golden / name / ("input_" + std::to_string(n) + ".f32"));
    std::vector<float> expected = read_f32(golden / name / ("expected_" + std::to_string(n) + ".f32"));
    CHECK(x.size() == n * n_in && expected.size() == n * n_out, "golden file sizes");
    // One more float in front puts the input off 64-byte (and 8-byte) alignment.
    std::vector<float> shifted(x.size() + 1);
    std::copy(x.begin(), x.end(), shifted.begin() + 1);
    for (const float* in : {x.data(), shifted.data() + 1}) {
      std::vector<float> y(n * n_out, NAN);
      solver.predict(in, n, y.data());
      double worst = 0;
      for (std::size_t i = 0; i < y.size(); ++i) {  // a branch, not fmax: GCC 12 for aarch64 crashes vectorising fmax
        const double d = std::fabs(double(y[i]) - expected[i]);
        if (!(d <= worst)) worst = d;
      }
      CHECK(worst <= 1e-5, (name + " N=" + std::to_string(n) + " max abs error " + std::to_string(worst)).c_str());
    }
    ++cases;
  }
  CHECK(cases >= 8, "golden index has the expected cases");
}

static void test_c_api(const fs::path& golden) {
  const std::string dir = (golden / "mlp_2_1_tanh").string();
  kd_edge_solver* solver = nullptr;
  CHECK(kd_edge_open(dir.c_str(), &solver) == KD_EDGE_OK && solver != nullptr, kd_edge_last_error(nullptr));
  CHECK(kd_edge_n_inputs(solver) == 2 && kd_edge_n_outputs(solver) == 1, "C API widths");
  std::vector<float> x = read_f32(golden / "mlp_2_1_tanh" / "input_7.f32");
  std::vector<float> expected = read_f32(golden / "mlp_2_1_tanh" / "expected_7.f32");
  std::vector<float> y(7);
  CHECK(kd_edge_predict(solver, x.data(), 7, y.data()) == KD_EDGE_OK, kd_edge_last_error(solver));
  CHECK(std::fabs(y[6] - expected[6]) <= 1e-5, "C API result");
  CHECK(kd_edge_predict(solver, nullptr, 7, y.data()) == KD_EDGE_ERR_INVALID_INPUT, "null input refused");
  CHECK(contains(kd_edge_last_error(solver), "null"), kd_edge_last_error(solver));
  std::vector<float> bad = x;
  bad[2 * 4 + 1] = NAN;  // point 4, column 1
  CHECK(kd_edge_predict(solver, bad.data(), 7, y.data()) == KD_EDGE_ERR_INVALID_INPUT, "NaN input refused");
  CHECK(contains(kd_edge_last_error(solver), "input point 4 has a non-finite value in column 1"), kd_edge_last_error(solver));
  CHECK(kd_edge_predict(solver, x.data(), 0, nullptr) == KD_EDGE_OK, "zero points is a no-op");
  CHECK(std::string(kd_edge_last_error(solver)).empty(), "a successful call clears the error");
  CHECK(kd_edge_predict(nullptr, x.data(), 7, y.data()) == KD_EDGE_ERR_INVALID_INPUT &&
            contains(kd_edge_last_error(nullptr), "kd_edge_predict: solver is null"),
        "null solver refused, and said why");
  kd_edge_close(solver);
  kd_edge_close(nullptr);

  kd_edge_solver* missing = reinterpret_cast<kd_edge_solver*>(0x1);
  CHECK(kd_edge_open("/no/such/artifact", &missing) == KD_EDGE_ERR_NOT_FOUND && missing == nullptr, "missing dir");
  CHECK(contains(kd_edge_last_error(nullptr), "/no/such/artifact"), kd_edge_last_error(nullptr));
  CHECK(kd_edge_open(nullptr, &missing) == KD_EDGE_ERR_INVALID_INPUT, "null path");
  CHECK(kd_edge_open(dir.c_str(), nullptr) == KD_EDGE_ERR_INVALID_INPUT, "null out");
}

// Flag, clamp and reject on mlp_2_1_tanh, whose domain is [-1.5, 1.5]^2.
static void test_domain_policies(const fs::path& golden) {
  const std::string dir = (golden / "mlp_2_1_tanh").string();
  const std::vector<float> in = {0.5f, 0.5f, 1.7f, -0.2f, -1.5f, 1.5f, 0.1f, -3.0f};  // points 1 and 3 outside
  const std::vector<float> clamped = {0.5f, 0.5f, 1.5f, -0.2f, -1.5f, 1.5f, 0.1f, -1.5f};
  std::vector<float> want(4), got(4);

  kd_edge::Solver flag(dir);
  CHECK(flag.domain_policy() == kd_edge::DomainPolicy::kFlag, "manifest default policy is flag");
  CHECK(flag.info().lower == std::vector<float>({-1.5f, -1.5f}), "domain read from the manifest");
  kd_edge::PredictReport report = flag.predict(clamped.data(), 4, want.data());
  CHECK(report.out_of_domain == 0, "points on the boundary are inside");
  report = flag.predict(in.data(), 4, got.data());
  CHECK(report.out_of_domain == 2 && report.first_out_of_domain == 1, "flag counts points 1 and 3");
  CHECK(got[0] == want[0] && got[1] != want[1], "flag computes the point as given");

  kd_edge::SolverOptions clamp_options;
  clamp_options.domain_policy = kd_edge::DomainPolicy::kClamp;
  kd_edge::Solver clamp(dir, clamp_options);
  report = clamp.predict(in.data(), 4, got.data());
  CHECK(report.out_of_domain == 2 && report.first_out_of_domain == 1, "clamp counts points 1 and 3");
  CHECK(got == want, "clamp computes the nearest point of the domain");
  CHECK(in[2] == 1.7f, "clamp leaves the caller's input alone");

  kd_edge::SolverOptions reject_options;
  reject_options.domain_policy = kd_edge::DomainPolicy::kReject;
  kd_edge::Solver reject(dir, reject_options);
  std::string message;
  try {
    reject.predict(in.data(), 4, got.data());
  } catch (const kd_edge::Error& e) {
    message = e.what();
    CHECK(e.kind() == kd_edge::ErrorKind::kInvalidInput, "reject is an input error");
  }
  CHECK(contains(message, "input point 1 is outside the training domain: x0 = 1.70000005 not in [-1.5, 1.5]"),
        message.c_str());
  CHECK(reject.predict(clamped.data(), 4, got.data()).out_of_domain == 0, "reject accepts points inside");

  std::string no_domain;
  try {
    kd_edge::Solver((golden / "mlp_1_1_sin").string(), reject_options);
  } catch (const kd_edge::Error& e) {
    no_domain = e.what();
  }
  CHECK(contains(no_domain, "needs the training domain, which this artifact does not record"), no_domain.c_str());
}

// A model that overflows: its inf is refused by default, passed through when the check is off.
static void test_output_check(const fs::path& golden) {
  const std::string dir = (golden / "overflow").string();
  const float x = 0.25f;
  float y = 0;
  std::string message;
  try {
    kd_edge::Solver(dir).predict(&x, 1, &y);
  } catch (const kd_edge::Error& e) {
    message = e.what();
    CHECK(e.kind() == kd_edge::ErrorKind::kRuntime, "a non-finite output is a runtime error");
  }
  CHECK(contains(message, "output point 0 is non-finite in column 0 (y0)"), message.c_str());
  kd_edge::SolverOptions unchecked;
  unchecked.check_outputs = false;
  kd_edge::Solver(dir, unchecked).predict(&x, 1, &y);
  CHECK(std::isinf(y), "check_outputs=false passes the output through");
}

// One artifact, many solvers; the artifact outlives the caller's handle.
static void test_shared_artifact(const fs::path& golden) {
  auto artifact = kd_edge::Artifact::load((golden / "mlp_2_1_tanh").string());
  kd_edge::Solver a(artifact), b(artifact);
  CHECK(a.artifact() == b.artifact() && artifact.use_count() == 3, "solvers share the loaded artifact");
  std::vector<float> x = read_f32(golden / "mlp_2_1_tanh" / "input_7.f32");
  std::vector<float> expected = read_f32(golden / "mlp_2_1_tanh" / "expected_7.f32");
  artifact.reset();
  std::vector<float> y(7);
  b.predict(x.data(), 7, y.data());
  CHECK(std::fabs(y[3] - expected[3]) <= 1e-5, "a solver keeps its artifact alive");

  kd_edge_artifact* shared = nullptr;
  CHECK(kd_edge_artifact_load((golden / "mlp_2_1_tanh").string().c_str(), &shared) == KD_EDGE_OK, kd_edge_last_error(nullptr));
  kd_edge_options options = kd_edge_default_options();
  options.domain_policy = KD_EDGE_DOMAIN_REJECT;
  kd_edge_solver* solver = nullptr;
  CHECK(kd_edge_open_artifact(shared, &options, &solver) == KD_EDGE_OK, kd_edge_last_error(nullptr));
  kd_edge_artifact_close(shared);
  const float outside[2] = {0.0f, 9.0f};
  CHECK(kd_edge_predict(solver, outside, 1, y.data()) == KD_EDGE_ERR_INVALID_INPUT, "C API reject");
  CHECK(contains(kd_edge_last_error(solver), "x1 = 9 not in [-1.5, 1.5]"), kd_edge_last_error(solver));
  kd_edge_close(solver);

  options.domain_policy = KD_EDGE_DOMAIN_FLAG;
  CHECK(kd_edge_open_with((golden / "mlp_2_1_tanh").string().c_str(), &options, &solver) == KD_EDGE_OK, "open_with");
  std::size_t first = 99;
  CHECK(kd_edge_predict(solver, outside, 1, y.data()) == KD_EDGE_OK, "C API flag computes");
  CHECK(kd_edge_out_of_domain(solver, &first) == 1 && first == 0, "C API reports the flagged point");
  kd_edge_close(solver);
  options.domain_policy = 7;
  CHECK(kd_edge_open_with((golden / "mlp_2_1_tanh").string().c_str(), &options, &solver) == KD_EDGE_ERR_INVALID_INPUT &&
            contains(kd_edge_last_error(nullptr), "domain_policy must be"),
        kd_edge_last_error(nullptr));
  CHECK(kd_edge_open_artifact(nullptr, nullptr, &solver) == KD_EDGE_ERR_INVALID_INPUT, "null artifact");
}

// Sizes whose bytes do not fit a size_t are refused, not wrapped (a wrapped size once gave a
// 0-byte scratch that predict then wrote past).
static void test_huge_sizes(const fs::path& golden) {
  const std::string dir = (golden / "mlp_2_1_tanh").string();
  kd_edge::SolverOptions options;
  const std::size_t huge = std::numeric_limits<std::size_t>::max() / 4 + 1;  // x 2 inputs x 4 bytes wraps
  options.max_batch = huge;
  options.domain_policy = kd_edge::DomainPolicy::kClamp;
  std::string message;
  try {
    kd_edge::Solver solver(dir, options);
  } catch (const kd_edge::Error& e) {
    message = e.what();
  }
  CHECK(contains(message, "max_batch of " + std::to_string(huge) + " points is larger than memory can hold"),
        message.c_str());
  kd_edge::Solver solver(dir);
  float in[2] = {0, 0}, out[1];
  message.clear();
  try {
    solver.predict(in, huge * 2 + 1, out);
  } catch (const kd_edge::Error& e) {
    message = e.what();
  }
  CHECK(contains(message, "a batch of " + std::to_string(huge * 2 + 1) + " points is larger than memory can hold"),
        message.c_str());
  kd_edge::SolverOptions threads;
  threads.threads = 2;
  message.clear();
  try {
    kd_edge::Solver s2(dir, threads);
  } catch (const kd_edge::Error& e) {
    message = e.what();
  }
  CHECK(contains(message, "threads must be 0 (the pool) or 1 (the calling thread), got 2"), message.c_str());
}

// Input and output in one buffer: refused (the pooled kernel gave 18-21% wrong outputs).
static void test_overlap(const fs::path& golden) {
  kd_edge::Solver solver((golden / "mlp_2_1_tanh").string());
  std::vector<float> buffer(3 * 5000, 0.1f);
  std::string message;
  try {
    solver.predict(buffer.data(), 5000, buffer.data() + 5000);  // out = the second half of the input
  } catch (const kd_edge::Error& e) {
    message = e.what();
  }
  CHECK(contains(message, "the input and output buffers overlap"), message.c_str());
  solver.predict(buffer.data(), 5000, buffer.data() + 10000);  // adjacent, not overlapping: fine
}

static void test_bad_artifacts(const fs::path& golden, const fs::path& tmp) {
  const fs::path good = golden / "mlp_2_1_tanh";
  const std::string manifest = read_text(good / "manifest.json");
  // Each case: a fresh copy of the good artifact, damaged by `damage`, must be refused with `expect`.
  auto expect_refusal = [&](const std::string& label, const std::function<void(const fs::path&)>& damage,
                            kd_edge::ErrorKind kind, const std::string& expect) {
    fs::path dir = tmp / label;
    fs::remove_all(dir);
    fs::copy(good, dir);
    damage(dir);
    kd_edge::ErrorKind got = kd_edge::ErrorKind::kRuntime;
    std::string message = open_error(dir, &got);
    CHECK(!message.empty() && contains(message, expect) && got == kind, (label + ": " + message).c_str());
  };
  using K = kd_edge::ErrorKind;
  expect_refusal("no_manifest", [](const fs::path& d) { fs::remove(d / "manifest.json"); }, K::kNotFound, "no manifest.json");
  expect_refusal("not_json", [](const fs::path& d) { write_text(d / "manifest.json", "{ this is not json"); },
                 K::kInvalidArtifact, "not valid JSON");
  expect_refusal("not_object", [](const fs::path& d) { write_text(d / "manifest.json", "[1, 2]"); },
                 K::kInvalidArtifact, "JSON object");
  expect_refusal("format", [&](const fs::path& d) { write_text(d / "manifest.json", replace(manifest, "\"format\": 3", "\"format\": 99")); },
                 K::kInvalidArtifact, "manifest format 99, this runtime reads 3 (update kd-edge)");
  expect_refusal("no_format", [&](const fs::path& d) { write_text(d / "manifest.json", replace(manifest, "\"format\": 3,", "")); },
                 K::kInvalidArtifact, "missing field \"format\"");
  expect_refusal("sha", [](const fs::path& d) { std::ofstream(d / "model.so", std::ios::app) << "x"; },
                 K::kInvalidArtifact, "the library was changed or damaged");
  expect_refusal("no_library", [](const fs::path& d) { fs::remove(d / "model.so"); }, K::kNotFound, "missing");
  expect_refusal("escape", [&](const fs::path& d) { write_text(d / "manifest.json", replace(manifest, "\"model.so\"", "\"../model.so\"")); },
                 K::kInvalidArtifact, "plain file name");
  expect_refusal("width", [&](const fs::path& d) { write_text(d / "manifest.json", replace(manifest, "\"input_width\": 2", "\"input_width\": 3")); },
                 K::kInvalidArtifact, "input_width");
  expect_refusal("dtype", [&](const fs::path& d) { write_text(d / "manifest.json", replace(manifest, "\"float32\"", "\"float16\"")); },
                 K::kInvalidArtifact, "dtype \"float16\"");
  const std::string other_arch = contains(manifest, "\"arch\": \"riscv64\"") ? "x86_64" : "riscv64";
  expect_refusal("arch", [&](const fs::path& d) {
                   auto at = manifest.find("\"arch\": \"") + 9;
                   write_text(d / "manifest.json", manifest.substr(0, at) + other_arch + manifest.substr(manifest.find('"', at)));
                 },
                 K::kInvalidArtifact, "library compiled for " + other_arch);
  expect_refusal("feature", [&](const fs::path& d) {
                   write_text(d / "manifest.json", replace(manifest, "\"features\": [", "\"features\": [\"kd_edge_imaginary_isa\", "));
                 },
                 K::kInvalidArtifact, "needs features this host lacks: kd_edge_imaginary_isa");
  expect_refusal("not_a_library", [&](const fs::path& d) {
                   write_text(d / "model.so", "not an ELF file");
                   std::string digest = kd_edge::sha256_file((d / "model.so").string());
                   auto at = manifest.find("\"library_sha256\": \"") + 19;
                   write_text(d / "manifest.json", manifest.substr(0, at) + digest + manifest.substr(at + 64));
                 },
                 K::kInvalidArtifact, "cannot load");
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: test_runtime GOLDEN_DIR\n");
    return 2;
  }
  const fs::path golden = argv[1];
  const fs::path tmp = fs::temp_directory_path() / ("kd_edge_test_" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  test_sha256(tmp);
  test_golden(golden);
  test_c_api(golden);
  test_domain_policies(golden);
  test_output_check(golden);
  test_shared_artifact(golden);
  test_bad_artifacts(golden, tmp);
  test_huge_sizes(golden);
  test_overlap(golden);
  fs::remove_all(tmp);
  std::printf("%s\n", failures ? "FAILED" : "all runtime checks passed");
  return failures ? 1 : 0;
}
