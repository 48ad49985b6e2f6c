// libFuzzer target for the manifest reader (json.cpp + manifest.cpp): any byte string must either
// parse into an ArtifactInfo that keeps the runtime's invariants or be refused with
// kd_edge::Error; a crash, a sanitizer report, another exception or a broken invariant is a bug.
//   make fuzz FUZZ_SECONDS=600    (seeds: csrc/fuzz/corpus, new inputs: build/fuzz/corpus)
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "kd_edge/solver.hpp"

namespace {

void require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "manifest accepted with a broken invariant: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  kd_edge::ArtifactInfo info;
  try {
    info = kd_edge::parse_manifest(text, "fuzz");
  } catch (const kd_edge::Error&) {
    return 0;  // refused, as it should be for nearly every input
  }
  const std::size_t n_in = info.input_names.size(), n_out = info.output_names.size();
  require(info.format == kd_edge::kManifestFormat, "format");
  require(n_in > 0 && n_out > 0, "widths");
  require(info.lower.size() == info.upper.size() && (info.lower.empty() || info.lower.size() == n_in), "domain size");
  for (std::size_t i = 0; i < info.lower.size(); ++i) require(info.lower[i] <= info.upper[i], "domain order");
  require(info.library_sha256.size() == 64, "sha256");
  require(!info.library.empty() && info.library.find('/') == std::string::npos, "library name");
  require(!info.entry.empty(), "entry");
  require(info.small_entry.empty() || (info.tile_points >= 1 && info.small_max_points < info.tile_points), "tiles");
  return 0;
}
