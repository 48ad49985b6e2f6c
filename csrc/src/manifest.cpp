// Reads and validates manifest.json before anything from the artifact is executed.
#include <tvm/ffi/extra/json.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "host.hpp"
#include "kd_edge/solver.hpp"

namespace kd_edge {
namespace {

namespace ffi = tvm::ffi;
namespace fs = std::filesystem;

[[noreturn]] void bad(const std::string& manifest, const std::string& what) {
  throw Error(ErrorKind::kInvalidArtifact, manifest + ": " + what);
}

ffi::Any field(const ffi::json::Object& obj, const char* key, const std::string& manifest) {
  auto it = obj.find(ffi::String(key));
  if (it == obj.end()) bad(manifest, std::string("missing field \"") + key + "\"");
  return (*it).second;
}

std::string string_field(const ffi::json::Object& obj, const char* key, const std::string& manifest) {
  auto value = field(obj, key, manifest).try_cast<ffi::String>();
  if (!value) bad(manifest, std::string("field \"") + key + "\" must be a string");
  return std::string(*value);
}

ffi::json::Object object_field(const ffi::json::Object& obj, const char* key, const std::string& manifest) {
  auto value = field(obj, key, manifest).try_cast<ffi::json::Object>();
  if (!value) bad(manifest, std::string("field \"") + key + "\" must be an object");
  return *value;
}

std::vector<std::string> string_list(const ffi::json::Object& obj, const char* key,
                                     const std::string& manifest, bool allow_empty) {
  auto value = field(obj, key, manifest).try_cast<ffi::json::Array>();
  if (!value) bad(manifest, std::string("field \"") + key + "\" must be a list of strings");
  std::vector<std::string> out;
  for (const ffi::Any& item : *value) {
    auto s = item.try_cast<ffi::String>();
    if (!s) bad(manifest, std::string("field \"") + key + "\" must be a list of strings");
    out.emplace_back(*s);
  }
  if (out.empty() && !allow_empty) bad(manifest, std::string("field \"") + key + "\" is empty");
  return out;
}

std::string read_text(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
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

std::vector<float> number_list(const ffi::json::Array& values, const char* key, std::size_t size,
                               const std::string& where) {
  if (values.size() != size)
    bad(where, std::string("field \"") + key + "\" must have one number per input (" + std::to_string(size) + ")");
  std::vector<float> out;
  for (const ffi::Any& v : values) {
    if (auto d = v.try_cast<double>()) {
      out.push_back(static_cast<float>(*d));
    } else if (auto i = v.try_cast<int64_t>()) {
      out.push_back(static_cast<float>(*i));
    } else {
      bad(where, std::string("field \"") + key + "\" must be a list of numbers");
    }
    if (!std::isfinite(out.back())) bad(where, std::string("field \"") + key + "\" has a non-finite bound");
  }
  return out;
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
  ffi::String parse_error;
  ffi::json::Value root;
  try {
    root = ffi::json::Parse(ffi::String(text), &parse_error);
  } catch (const ffi::Error& e) {
    bad(where, std::string("not valid JSON: ") + e.what());
  }
  if (!parse_error.empty()) bad(where, "not valid JSON: " + std::string(parse_error));
  auto top = root.try_cast<ffi::json::Object>();
  if (!top) bad(where, "top level must be a JSON object");

  ArtifactInfo info;
  auto format = field(*top, "format", where).try_cast<int64_t>();
  if (!format) bad(where, "field \"format\" must be an integer");
  if (*format != kManifestFormat)
    bad(where, "manifest format " + std::to_string(*format) + ", this runtime reads " +
                   std::to_string(kManifestFormat) + (*format > kManifestFormat ? " (update kd-edge)" : " (recompile the artifact)"));
  info.format = static_cast<int>(*format);

  info.library = string_field(*top, "library", where);
  // The library must sit inside the artifact: a path could point anywhere on disk.
  if (info.library.empty() || info.library.find('/') != std::string::npos || info.library == "." ||
      info.library == "..")
    bad(where, "field \"library\" must be a plain file name inside the artifact, got \"" + info.library + "\"");
  info.library_sha256 = string_field(*top, "library_sha256", where);
  if (!is_hex_digest(info.library_sha256))
    bad(where, "field \"library_sha256\" must be 64 lower-case hex digits");

  ffi::json::Object runtime = object_field(*top, "runtime", where);
  const std::string kind = string_field(runtime, "kind", where);
  info.entry = string_field(runtime, "entry", where);
  if (kind == "fused") {
    info.runtime = RuntimeKind::kFused;
    info.parallel_entry = string_field(runtime, "parallel_entry", where);
    auto min_points = field(runtime, "parallel_min_points", where).try_cast<int64_t>();
    if (!min_points || *min_points < 1) bad(where, "field \"parallel_min_points\" must be a positive integer");
    info.parallel_min_points = static_cast<std::size_t>(*min_points);
  } else if (kind != "vm") {
    bad(where, "runtime kind \"" + kind + "\", this runtime runs \"fused\" and \"vm\"");
  }

  std::string dtype = string_field(*top, "dtype", where);
  if (dtype != "float32") bad(where, "dtype \"" + dtype + "\", this runtime supports float32");
  info.input_names = string_list(*top, "inputs", where, false);
  info.output_names = string_list(*top, "outputs", where, false);
  for (const char* side : {"input", "output"}) {
    const std::string key = std::string(side) + "_width";
    auto width = field(*top, key.c_str(), where).try_cast<int64_t>();
    const auto& names = side[0] == 'i' ? info.input_names : info.output_names;
    if (!width || *width != static_cast<int64_t>(names.size()))
      bad(where, "field \"" + key + "\" must equal the number of " + side + " names (" +
                     std::to_string(names.size()) + ")");
  }

  // "domain": null, or {"lower": [...], "upper": [...]} with one bound per input.
  ffi::Any domain = field(*top, "domain", where);
  if (domain != nullptr) {
    auto box = domain.try_cast<ffi::json::Object>();
    if (!box) bad(where, "field \"domain\" must be null or an object with \"lower\" and \"upper\"");
    for (const char* key : {"lower", "upper"}) {
      auto values = field(*box, key, where).try_cast<ffi::json::Array>();
      if (!values) bad(where, std::string("field \"") + key + "\" must be a list of numbers");
      (key[0] == 'l' ? info.lower : info.upper) = number_list(*values, key, info.input_names.size(), where);
    }
    for (std::size_t i = 0; i < info.lower.size(); ++i)
      if (!(info.lower[i] <= info.upper[i]))
        bad(where, "domain of input " + info.input_names[i] + " has lower > upper");
  }
  ffi::json::Object defaults = object_field(*top, "defaults", where);
  info.default_domain_policy = parse_policy(string_field(defaults, "out_of_domain", where), where);
  ffi::Any check = field(defaults, "check_outputs", where);
  if (check.type_index() != ffi::TypeIndex::kTVMFFIBool) bad(where, "field \"check_outputs\" must be true or false");
  info.default_check_outputs = check.cast<bool>();
  if (info.lower.empty() && info.default_domain_policy != DomainPolicy::kFlag)
    bad(where, "out_of_domain \"" + std::string(domain_policy_name(info.default_domain_policy)) +
                   "\" needs a domain, but \"domain\" is null");

  info.tvm_version = string_field(*top, "tvm_version", where);
  ffi::json::Object target = object_field(*top, "target", where);
  info.target_arch = string_field(target, "arch", where);
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
    bad(where, "library compiled for " + info.target_arch + ", this host is " + host_arch());
  std::vector<std::string> missing = missing_cpu_features(info.target_features);
  if (!missing.empty()) {
    std::string list;
    for (const auto& f : missing) list += (list.empty() ? "" : ", ") + f;
    bad(where, "library compiled for CPU \"" + info.target_cpu + "\" needs features this host lacks: " + list +
                   " (recompile with a portable target)");
  }
  return info;
}

}  // namespace kd_edge
