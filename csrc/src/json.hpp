// A small JSON reader for manifest.json: bounded nesting and size, so a hostile manifest is an
// error and never a stack overflow or an unbounded allocation.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace kd_edge::json {

// Arrays and objects nested deeper than this are refused (manifests use 4 levels).
constexpr int kMaxDepth = 32;
// Larger texts are refused before parsing (manifests are a few KB).
constexpr std::size_t kMaxBytes = 1 << 20;

struct Value {
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject } type = Type::kNull;
  bool boolean = false;
  double number = 0;
  bool integral = false;  // the number was written without fraction or exponent
  std::string string;
  std::vector<Value> array;
  std::map<std::string, Value> object;

  // Member `key` of an object, or nullptr.
  const Value* find(const std::string& key) const;
};

// Parses `text` (UTF-8, at most kMaxBytes, nesting at most kMaxDepth). On failure returns false
// and sets *error to what and where (byte offset).
bool parse(const std::string& text, Value* out, std::string* error);

}  // namespace kd_edge::json
