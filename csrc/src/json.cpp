#include "json.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace kd_edge::json {

const Value* Value::find(const std::string& key) const {
  auto it = object.find(key);
  return it == object.end() ? nullptr : &it->second;
}

namespace {

class Parser {
 public:
  explicit Parser(const std::string& text) : s_(text) {}

  bool run(Value* out, std::string* error) {
    if (!value(out, 0)) return fail(error);
    skip_space();
    if (pos_ != s_.size()) {
      why_ = "unexpected text after the top-level value";
      return fail(error);
    }
    return true;
  }

 private:
  const std::string& s_;
  std::size_t pos_ = 0;
  std::string why_;

  bool fail(std::string* error) {
    if (error) *error = why_ + " at byte " + std::to_string(pos_);
    return false;
  }
  bool error(const char* what) {
    why_ = what;
    return false;
  }
  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  bool literal(const char* word) {
    const std::size_t n = std::strlen(word);
    if (s_.compare(pos_, n, word) != 0) return error("invalid literal");
    pos_ += n;
    return true;
  }

  bool value(Value* v, int depth) {
    skip_space();
    if (pos_ >= s_.size()) return error("unexpected end of text");
    const char c = s_[pos_];
    if (c == '{' || c == '[') {
      if (depth >= kMaxDepth) return error("nesting deeper than 32 levels");
      return c == '{' ? object(v, depth + 1) : array(v, depth + 1);
    }
    if (c == '"') {
      v->type = Value::Type::kString;
      return string(&v->string);
    }
    if (c == 't' || c == 'f') {
      v->type = Value::Type::kBool;
      v->boolean = c == 't';
      return literal(c == 't' ? "true" : "false");
    }
    if (c == 'n') {
      v->type = Value::Type::kNull;
      return literal("null");
    }
    return number(v);
  }

  bool array(Value* v, int depth) {
    v->type = Value::Type::kArray;
    ++pos_;
    skip_space();
    if (pos_ < s_.size() && s_[pos_] == ']') return ++pos_, true;
    for (;;) {
      v->array.emplace_back();
      if (!value(&v->array.back(), depth)) return false;
      skip_space();
      if (pos_ >= s_.size()) return error("unterminated array");
      if (s_[pos_] == ']') return ++pos_, true;
      if (s_[pos_++] != ',') return error("expected ',' or ']' in array");
    }
  }

  bool object(Value* v, int depth) {
    v->type = Value::Type::kObject;
    ++pos_;
    skip_space();
    if (pos_ < s_.size() && s_[pos_] == '}') return ++pos_, true;
    for (;;) {
      skip_space();
      std::string key;
      if (pos_ >= s_.size() || s_[pos_] != '"') return error("expected a string key in object");
      if (!string(&key)) return false;
      skip_space();
      if (pos_ >= s_.size() || s_[pos_++] != ':') return error("expected ':' after object key");
      Value member;
      if (!value(&member, depth)) return false;
      if (!v->object.emplace(std::move(key), std::move(member)).second) return error("duplicate object key");
      skip_space();
      if (pos_ >= s_.size()) return error("unterminated object");
      if (s_[pos_] == '}') return ++pos_, true;
      if (s_[pos_++] != ',') return error("expected ',' or '}' in object");
    }
  }

  static void put_utf8(std::string* out, unsigned cp) {
    if (cp < 0x80) {
      *out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      *out += static_cast<char>(0xC0 | (cp >> 6));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      *out += static_cast<char>(0xE0 | (cp >> 12));
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      *out += static_cast<char>(0xF0 | (cp >> 18));
      *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  bool hex4(unsigned* cp) {
    if (pos_ + 4 > s_.size()) return error("truncated \\u escape");
    *cp = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = s_[pos_++];
      *cp <<= 4;
      if (h >= '0' && h <= '9') *cp |= static_cast<unsigned>(h - '0');
      else if (h >= 'a' && h <= 'f') *cp |= static_cast<unsigned>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') *cp |= static_cast<unsigned>(h - 'A' + 10);
      else return error("invalid \\u escape");
    }
    return true;
  }

  // Length of the UTF-8 sequence starting at s_[pos_], or 0 if it is not valid UTF-8.
  std::size_t utf8_length() const {
    const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s_[pos_ + i]); };
    const unsigned char c = b(0);
    std::size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || pos_ + n > s_.size()) return 0;
    for (std::size_t i = 1; i < n; ++i)
      if ((b(i) & 0xC0) != 0x80) return 0;
    if (n == 2 && c < 0xC2) return 0;  // overlong
    return n;
  }

  bool string(std::string* out) {
    ++pos_;  // opening quote
    for (;;) {
      if (pos_ >= s_.size()) return error("unterminated string");
      const char c = s_[pos_];
      if (c == '"') return ++pos_, true;
      if (static_cast<unsigned char>(c) < 0x20) return error("control character in string");
      if (c != '\\') {
        const std::size_t n = utf8_length();
        if (n == 0) return error("invalid UTF-8 in string");
        out->append(s_, pos_, n);
        pos_ += n;
        continue;
      }
      if (++pos_ >= s_.size()) return error("unterminated string");
      const char e = s_[pos_++];
      switch (e) {
        case '"': *out += '"'; break;
        case '\\': *out += '\\'; break;
        case '/': *out += '/'; break;
        case 'b': *out += '\b'; break;
        case 'f': *out += '\f'; break;
        case 'n': *out += '\n'; break;
        case 'r': *out += '\r'; break;
        case 't': *out += '\t'; break;
        case 'u': {
          unsigned cp;
          if (!hex4(&cp)) return false;
          if (cp >= 0xD800 && cp < 0xDC00) {  // surrogate pair
            unsigned low;
            if (s_.compare(pos_, 2, "\\u") != 0) return error("unpaired surrogate in string");
            pos_ += 2;
            if (!hex4(&low)) return false;
            if (low < 0xDC00 || low > 0xDFFF) return error("unpaired surrogate in string");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return error("unpaired surrogate in string");
          }
          put_utf8(out, cp);
          break;
        }
        default: return error("invalid escape in string");
      }
    }
  }

  bool number(Value* v) {
    const std::size_t start = pos_;
    bool integral = true;
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    const auto digits = [&] {
      const std::size_t from = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      return pos_ - from;
    };
    if (pos_ < s_.size() && s_[pos_] == '0') ++pos_;
    else if (digits() == 0) return error("invalid value");
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      integral = false;
      if (digits() == 0) return error("invalid number");
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      integral = false;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (digits() == 0) return error("invalid number");
    }
    const std::string text = s_.substr(start, pos_ - start);
    errno = 0;
    v->type = Value::Type::kNumber;
    v->number = std::strtod(text.c_str(), nullptr);
    v->integral = integral;
    if (errno == ERANGE && (v->number > 1 || v->number < -1)) return error("number out of range");
    return true;
  }
};

}  // namespace

bool parse(const std::string& text, Value* out, std::string* error) {
  if (text.size() > kMaxBytes) {
    if (error) *error = "larger than " + std::to_string(kMaxBytes) + " bytes";
    return false;
  }
  *out = Value();
  return Parser(text).run(out, error);
}

}  // namespace kd_edge::json
