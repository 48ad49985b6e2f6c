// Reads and validates manifest.json before anything from the artifact is executed.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "host.hpp"
#include "json.hpp"
#include "kd_edge/solver.hpp"

namespace kd_edge {
namespace {

namespace fs = std::filesystem;
using json::Value;
using Type = json::Value::Type;

[[noreturn]] void bad(const std::string& manifest, const std::string& what) {
  throw Error(ErrorKind::kInvalidArtifact, manifest + ": " + what);
}

const Value& field(const Value& obj, const char* key, const std::string& manifest) {
  const Value* v = obj.find(key);
  if (v == nullptr) bad(manifest, std::string("missing field \"") + key + "\"");
  return *v;
}

std::string string_field(const Value& obj, const char* key, const std::string& manifest) {
  const Value& v = field(obj, key, manifest);
  if (v.type != Type::kString) bad(manifest, std::string("field \"") + key + "\" must be a string");
  return v.string;
}

const Value& object_field(const Value& obj, const char* key, const std::string& manifest) {
  const Value& v = field(obj, key, manifest);
  if (v.type != Type::kObject) bad(manifest, std::string("field \"") + key + "\" must be an object");
  return v;
}

// An integer field (JSON numbers written without fraction, in int64 range; not true/false).
int64_t integer_field(const Value& obj, const char* key, const std::string& manifest) {
  const Value& v = field(obj, key, manifest);
  if (v.type != Type::kNumber || !v.integral || !(v.number >= -9.2e18 && v.number <= 9.2e18))
    bad(manifest, std::string("field \"") + key + "\" must be an integer");
  return static_cast<int64_t>(v.number);
}

std::vector<std::string> string_list(const Value& obj, const char* key, const std::string& manifest,
                                     bool allow_empty) {
  const Value& v = field(obj, key, manifest);
  if (v.type != Type::kArray) bad(manifest, std::string("field \"") + key + "\" must be a list of strings");
  std::vector<std::string> out;
  for (const Value& item : v.array) {
    if (item.type != Type::kString) bad(manifest, std::string("field \"") + key + "\" must be a list of strings");
    out.push_back(item.string);
  }
  if (out.empty() && !allow_empty) bad(manifest, std::string("field \"") + key + "\" is empty");
  return out;
}

// The file's bytes, refusing before reading any that are larger than a manifest can be.
std::string read_text(const fs::path& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (!ec && size > json::kMaxBytes)
    bad(path.string(), "is " + std::to_string(size) + " bytes, larger than a manifest can be (" +
                           std::to_string(json::kMaxBytes) + ")");
  std::ifstream file(path, std::ios::binary);
  std::string text;
  char block[4096];
  while (file.read(block, sizeof block) || file.gcount() > 0) {
    text.append(block, static_cast<std::size_t>(file.gcount()));
    if (text.size() > json::kMaxBytes) bad(path.string(), "larger than a manifest can be");
  }
  return text;
}

bool is_hex_digest(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

DomainPolicy parse_policy(const std::string& name, const std::string& where) {
  DomainPolicy policy;
  if (!domain_policy_from_name(name, &policy))
    bad(where, "out_of_domain \"" + name + "\", expected \"flag\", \"clamp\" or \"reject\"");
  return policy;
}

// A list of `size` finite numbers, one per `each` ("input", "residual").
std::vector<float> number_list(const Value& values, const char* key, std::size_t size, const char* each,
                               const std::string& where) {
  if (values.type != Type::kArray) bad(where, std::string("field \"") + key + "\" must be a list of numbers");
  if (values.array.size() != size)
    bad(where, std::string("field \"") + key + "\" must have one number per " + each + " (" + std::to_string(size) +
                   ")");
  std::vector<float> out;
  for (const Value& v : values.array) {
    if (v.type != Type::kNumber) bad(where, std::string("field \"") + key + "\" must be a list of numbers");
    out.push_back(static_cast<float>(v.number));
    if (!std::isfinite(out.back())) bad(where, std::string("field \"") + key + "\" has a non-finite bound");
  }
  return out;
}

// The target a host of this architecture can always run: what to recompile for.
const char* portable_target(const std::string& arch) {
  if (arch == "x86_64") return "x86-64-v3";
  if (arch == "aarch64") return "aarch64";
  if (arch == "armv7") return "armv7";
  if (arch == "riscv64") return "riscv64";
  return "host";
}

}  // namespace

const char* domain_policy_name(DomainPolicy policy) noexcept {
  switch (policy) {
    case DomainPolicy::kFlag: return "flag";
    case DomainPolicy::kClamp: return "clamp";
    case DomainPolicy::kReject: return "reject";
  }
  return "?";
}

bool domain_policy_from_name(const std::string& name, DomainPolicy* policy) noexcept {
  for (DomainPolicy p : {DomainPolicy::kFlag, DomainPolicy::kClamp, DomainPolicy::kReject}) {
    if (name == domain_policy_name(p)) {
      *policy = p;
      return true;
    }
  }
  return false;
}

ArtifactInfo parse_manifest(const std::string& text, const std::string& where) {
  Value root;
  std::string parse_error;
  if (!json::parse(text, &root, &parse_error)) bad(where, "not valid JSON: " + parse_error);
  if (root.type != Type::kObject) bad(where, "top level must be a JSON object");
  const Value& top = root;

  ArtifactInfo info;
  const int64_t format = integer_field(top, "format", where);
  if (format != kManifestFormat)
    bad(where, "manifest format " + std::to_string(format) + ", this runtime reads " +
                   std::to_string(kManifestFormat) + (format > kManifestFormat ? " (update kd-edge)" : " (recompile the artifact)"));
  info.format = static_cast<int>(format);

  info.library = string_field(top, "library", where);
  // The library must sit inside the artifact: a path could point anywhere on disk.
  if (info.library.empty() || info.library.find('/') != std::string::npos || info.library == "." ||
      info.library == "..")
    bad(where, "field \"library\" must be a plain file name inside the artifact, got \"" + info.library + "\"");
  info.library_sha256 = string_field(top, "library_sha256", where);
  if (!is_hex_digest(info.library_sha256))
    bad(where, "field \"library_sha256\" must be 64 lower-case hex digits");

  const Value& runtime = object_field(top, "runtime", where);
  const std::string kind = string_field(runtime, "kind", where);
  info.entry = string_field(runtime, "entry", where);
  if (kind == "fused") {
    info.runtime = RuntimeKind::kFused;
    info.parallel_entry = string_field(runtime, "parallel_entry", where);
    const int64_t min_points = integer_field(runtime, "parallel_min_points", where);
    if (min_points < 1) bad(where, "field \"parallel_min_points\" must be a positive integer");
    info.parallel_min_points = static_cast<std::size_t>(min_points);
    // Optional (artifacts compiled before it have none): the latency kernel for a few points.
    if (runtime.find("small_entry") != nullptr) {
      info.small_entry = string_field(runtime, "small_entry", where);
      const int64_t tile = integer_field(runtime, "tile_points", where);
      const int64_t small_max = integer_field(runtime, "small_max_points", where);
      if (tile < 1 || tile > 1024) bad(where, "field \"tile_points\" must be an integer from 1 to 1024");
      if (small_max < 0 || small_max >= tile)
        bad(where, "field \"small_max_points\" must be an integer from 0 to tile_points - 1");
      info.tile_points = static_cast<std::size_t>(tile);
      info.small_max_points = static_cast<std::size_t>(small_max);
    }
  } else if (kind == "static") {
    bad(where, "a static artifact: " + info.library + " and its header are linked into a program (or a "
               "microcontroller's firmware), not loaded; compile without static=True for this runtime");
  } else if (kind != "vm") {
    bad(where, "runtime kind \"" + kind + "\", this runtime runs \"fused\" and \"vm\"");
  }

  std::string dtype = string_field(top, "dtype", where);
  if (dtype != "float32") bad(where, "dtype \"" + dtype + "\", this runtime supports float32");
  info.input_names = string_list(top, "inputs", where, false);
  info.output_names = string_list(top, "outputs", where, false);
  for (const char* side : {"input", "output"}) {
    const std::string key = std::string(side) + "_width";
    const auto& names = side[0] == 'i' ? info.input_names : info.output_names;
    const Value& width = field(top, key.c_str(), where);
    if (width.type != Type::kNumber || !width.integral || width.number != static_cast<double>(names.size()))
      bad(where, "field \"" + key + "\" must equal the number of " + side + " names (" +
                     std::to_string(names.size()) + ")");
  }

  // "domain": null, or {"lower": [...], "upper": [...]} with one bound per input.
  const Value& domain = field(top, "domain", where);
  if (domain.type != Type::kNull) {
    if (domain.type != Type::kObject) bad(where, "field \"domain\" must be null or an object with \"lower\" and \"upper\"");
    info.lower = number_list(field(domain, "lower", where), "lower", info.input_names.size(), "input", where);
    info.upper = number_list(field(domain, "upper", where), "upper", info.input_names.size(), "input", where);
    for (std::size_t i = 0; i < info.lower.size(); ++i)
      if (!(info.lower[i] <= info.upper[i]))
        bad(where, "domain of input " + info.input_names[i] + " has lower > upper");
  }
  // Optional (fused, compiled with residual=True): which outputs are PDE residuals, and the
  // threshold above which a point's residual is suspect.
  const Value& runtime_again = object_field(top, "runtime", where);
  if (info.runtime == RuntimeKind::kFused && runtime_again.find("residual") != nullptr) {
    const Value& residual = object_field(runtime_again, "residual", where);
    const std::vector<std::string> names = string_list(residual, "names", where, false);
    info.residual_threshold =
        number_list(field(residual, "threshold", where), "threshold", names.size(), "residual", where);
    for (std::size_t k = 0; k < names.size(); ++k) {
      const auto column = std::find(info.output_names.begin(), info.output_names.end(), names[k]);
      if (column == info.output_names.end())
        bad(where, "residual \"" + names[k] + "\" is not among the outputs");
      if (!(info.residual_threshold[k] > 0) || !std::isfinite(info.residual_threshold[k]))
        bad(where, "residual threshold for \"" + names[k] + "\" must be a positive number");
      info.residual_columns.push_back(static_cast<std::size_t>(column - info.output_names.begin()));
    }
  }
  const Value& defaults = object_field(top, "defaults", where);
  info.default_domain_policy = parse_policy(string_field(defaults, "out_of_domain", where), where);
  const Value& check = field(defaults, "check_outputs", where);
  if (check.type != Type::kBool) bad(where, "field \"check_outputs\" must be true or false");
  info.default_check_outputs = check.boolean;
  if (info.lower.empty() && info.default_domain_policy != DomainPolicy::kFlag)
    bad(where, "out_of_domain \"" + std::string(domain_policy_name(info.default_domain_policy)) +
                   "\" needs a domain, but \"domain\" is null");

  info.tvm_version = string_field(top, "tvm_version", where);
  const Value& target = object_field(top, "target", where);
  info.target_name = string_field(target, "name", where);
  info.target_arch = string_field(target, "arch", where);
  info.target_triple = string_field(target, "triple", where);
  info.target_cpu = string_field(target, "cpu", where);
  info.target_features = string_list(target, "features", where, true);
  return info;
}

ArtifactInfo read_manifest(const std::string& artifact_dir) {
  fs::path dir(artifact_dir);
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw Error(ErrorKind::kNotFound, "artifact directory not found: " + artifact_dir);
  fs::path path = dir / "manifest.json";
  const std::string where = path.string();
  if (!fs::is_regular_file(path, ec))
    throw Error(ErrorKind::kNotFound, "no manifest.json in artifact directory " + artifact_dir);
  ArtifactInfo info = parse_manifest(read_text(path), where);

  // Refuse before loading: code for another architecture or for missing ISA extensions
  // would crash with SIGILL instead of failing cleanly.
  if (info.target_arch != host_arch())
    bad(where, "library compiled for " + info.target_arch + " (target \"" + info.target_name + "\", CPU " +
                   info.target_cpu + "), this host is " + host_arch() + ": compile the model for target \"" +
                   portable_target(host_arch()) + "\" or another " + host_arch() + " target");
  std::vector<std::string> missing = missing_cpu_features(info.target_features);
  if (!missing.empty()) {
    std::string list;
    for (const auto& f : missing) list += (list.empty() ? "" : ", ") + f;
    bad(where, "library compiled for CPU \"" + info.target_cpu + "\" needs features this host lacks: " + list +
                   " (recompile with the portable target \"" + portable_target(info.target_arch) + "\")");
  }
  return info;
}

}  // namespace kd_edge
