// C++ runtime tests without Python: parity with PyTorch on golden data, the C API,
// and refusal of damaged or mismatched artifacts.
//   test_runtime GOLDEN_DIR   (written by make_golden.py)
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
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
      for (std::size_t i = 0; i < y.size(); ++i) worst = std::fmax(worst, std::fabs(double(y[i]) - expected[i]));
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
  CHECK(kd_edge_predict(nullptr, x.data(), 7, y.data()) == KD_EDGE_ERR_INVALID_INPUT, "null solver refused");
  kd_edge_close(solver);
  kd_edge_close(nullptr);

  kd_edge_solver* missing = reinterpret_cast<kd_edge_solver*>(0x1);
  CHECK(kd_edge_open("/no/such/artifact", &missing) == KD_EDGE_ERR_NOT_FOUND && missing == nullptr, "missing dir");
  CHECK(contains(kd_edge_last_error(nullptr), "/no/such/artifact"), kd_edge_last_error(nullptr));
  CHECK(kd_edge_open(nullptr, &missing) == KD_EDGE_ERR_INVALID_INPUT, "null path");
  CHECK(kd_edge_open(dir.c_str(), nullptr) == KD_EDGE_ERR_INVALID_INPUT, "null out");
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
  expect_refusal("format", [&](const fs::path& d) { write_text(d / "manifest.json", replace(manifest, "\"format\": 1", "\"format\": 99")); },
                 K::kInvalidArtifact, "manifest format 99, this runtime reads 1");
  expect_refusal("no_format", [&](const fs::path& d) { write_text(d / "manifest.json", replace(manifest, "\"format\": 1,", "")); },
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
  expect_refusal("arch", [&](const fs::path& d) { write_text(d / "manifest.json", replace(manifest, "\"x86_64\"", "\"riscv64\"")); },
                 K::kInvalidArtifact, "library compiled for riscv64");
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
  test_bad_artifacts(golden, tmp);
  fs::remove_all(tmp);
  std::printf("%s\n", failures ? "FAILED" : "all runtime checks passed");
  return failures ? 1 : 0;
}
