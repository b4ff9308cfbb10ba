#include "json.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "error.hpp"

namespace ipad::json {
namespace {

const char* type_name(const Value& v) {
  if (v.is_null()) return "null";
  if (v.is_bool()) return "a boolean";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  return "an object";
}

[[noreturn]] void wrong_type(const Value& v, std::string_view what, const char* expected) {
  throw Error(std::string(what) + " must be " + expected + ", got " + type_name(v));
}

constexpr int kMaxDepth = 256;  // deeper documents are refused instead of exhausting the stack

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Value document() {
    skip_space();
    Value v = value(0);
    skip_space();
    if (pos_ != text_.size()) fail("unexpected text after the JSON value");
    return v;
  }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;

  [[noreturn]] void fail(const std::string& message) const {
    int line = 1, column = 1;
    for (std::size_t i = 0; i < pos_ && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    throw Error("JSON error at line " + std::to_string(line) + ", column " +
                std::to_string(column) + ": " + message);
  }

  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[pos_]; }

  void skip_space() {
    while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) {
      ++pos_;
    }
  }

  void expect_word(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) fail("invalid literal");
    pos_ += word.size();
  }

  Value value(int depth) {
    if (depth > kMaxDepth) fail("nesting deeper than " + std::to_string(kMaxDepth) + " levels");
    switch (peek()) {
      case '{': return object(depth);
      case '[': return array(depth);
      case '"': return Value(string());
      case 't': expect_word("true"); return Value(true);
      case 'f': expect_word("false"); return Value(false);
      case 'n': expect_word("null"); return Value();
      default:
        if (peek() == '-' || (peek() >= '0' && peek() <= '9')) return Value(number());
        fail(at_end() ? "unexpected end of input" : "unexpected character");
    }
  }

  Value object(int depth) {
    ++pos_;  // '{'
    Object members;
    skip_space();
    if (peek() == '}') {
      ++pos_;
      return Value(std::move(members));
    }
    while (true) {
      skip_space();
      if (peek() != '"') fail("expected a string key");
      std::size_t key_pos = pos_;
      std::string key = string();
      skip_space();
      if (peek() != ':') fail("expected ':' after an object key");
      ++pos_;
      skip_space();
      Value member = value(depth + 1);
      if (!members.emplace(std::move(key), std::move(member)).second) {
        pos_ = key_pos;
        fail("duplicate object key");
      }
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == '}') {
        ++pos_;
        return Value(std::move(members));
      }
      fail("expected ',' or '}' in an object");
    }
  }

  Value array(int depth) {
    ++pos_;  // '['
    Array items;
    skip_space();
    if (peek() == ']') {
      ++pos_;
      return Value(std::move(items));
    }
    while (true) {
      skip_space();
      items.push_back(value(depth + 1));
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == ']') {
        ++pos_;
        return Value(std::move(items));
      }
      fail("expected ',' or ']' in an array");
    }
  }

  double number() {
    std::size_t start = pos_;
    auto digits = [&] {
      std::size_t first = pos_;
      while (!at_end() && peek() >= '0' && peek() <= '9') ++pos_;
      return pos_ - first;
    };
    if (peek() == '-') ++pos_;
    if (peek() == '0') {
      ++pos_;
    } else if (digits() == 0) {
      fail("invalid number");
    }
    if (peek() == '.') {
      ++pos_;
      if (digits() == 0) fail("invalid number: digits expected after '.'");
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      if (peek() == '+' || peek() == '-') ++pos_;
      if (digits() == 0) fail("invalid number: digits expected in the exponent");
    }
    double result = 0.0;
    auto [end, ec] = std::from_chars(text_.data() + start, text_.data() + pos_, result);
    if (ec == std::errc::result_out_of_range) {
      // from_chars reports underflow and overflow alike; like Python, a tiny number reads as 0.
      std::string copy(text_.substr(start, pos_ - start));
      if (!std::isinf(std::strtod(copy.c_str(), nullptr))) return 0.0;
      pos_ = start;
      fail("number out of range");
    }
    if (ec != std::errc() || end != text_.data() + pos_) fail("invalid number");
    return result;
  }

  unsigned hex4() {
    unsigned code = 0;
    for (int i = 0; i < 4; ++i, ++pos_) {
      char c = peek();
      code <<= 4;
      if (c >= '0' && c <= '9') code |= unsigned(c - '0');
      else if (c >= 'a' && c <= 'f') code |= unsigned(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') code |= unsigned(c - 'A' + 10);
      else fail("invalid \\u escape (4 hex digits expected)");
    }
    return code;
  }

  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += char(cp);
    } else if (cp < 0x800) {
      out += char(0xC0 | (cp >> 6));
      out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += char(0xE0 | (cp >> 12));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    } else {
      out += char(0xF0 | (cp >> 18));
      out += char(0x80 | ((cp >> 12) & 0x3F));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    }
  }

  unsigned escaped_code_point() {
    unsigned cp = hex4();
    if (cp >= 0xDC00 && cp <= 0xDFFF) fail("lone low surrogate in \\u escape");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      if (text_.substr(pos_, 2) != "\\u") fail("high surrogate not followed by a low surrogate");
      pos_ += 2;
      unsigned low = hex4();
      if (low < 0xDC00 || low > 0xDFFF) fail("high surrogate not followed by a low surrogate");
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    return cp;
  }

  // Copies one UTF-8 encoded character (already known to start with a byte >= 0x80).
  void utf8_sequence(std::string& out) {
    auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text_[pos_ + i]); };
    unsigned lead = byte(0);
    std::size_t length = lead < 0xC2 ? 0 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : lead <= 0xF4 ? 4 : 0;
    if (length == 0 || pos_ + length > text_.size()) fail("invalid UTF-8");
    unsigned cp = lead & (0x7F >> length);
    for (std::size_t i = 1; i < length; ++i) {
      if ((byte(i) & 0xC0) != 0x80) fail("invalid UTF-8");
      cp = (cp << 6) | (byte(i) & 0x3F);
    }
    bool overlong = (length == 3 && cp < 0x800) || (length == 4 && cp < 0x10000);
    if (overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) fail("invalid UTF-8");
    out.append(text_.substr(pos_, length));
    pos_ += length;
  }

  std::string string() {
    ++pos_;  // opening quote
    std::string out;
    while (true) {
      if (at_end()) fail("unterminated string");
      char c = peek();
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string");
      if (static_cast<unsigned char>(c) >= 0x80) {
        utf8_sequence(out);
        continue;
      }
      ++pos_;
      if (c != '\\') {
        out += c;
        continue;
      }
      char e = peek();
      ++pos_;
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': append_utf8(out, escaped_code_point()); break;
        default: --pos_; fail("invalid escape in a string");
      }
    }
  }
};

}  // namespace

bool Value::as_bool(std::string_view what) const {
  if (!is_bool()) wrong_type(*this, what, "a boolean");
  return std::get<bool>(data_);
}

double Value::as_number(std::string_view what) const {
  if (!is_number()) wrong_type(*this, what, "a number");
  return std::get<double>(data_);
}

std::int64_t Value::as_integer(std::string_view what) const {
  double d = as_number(what);
  if (d != std::floor(d) || std::fabs(d) > 9007199254740992.0) {
    throw Error(std::string(what) + " must be an integer, got " + number(d));
  }
  return static_cast<std::int64_t>(d);
}

const std::string& Value::as_string(std::string_view what) const {
  if (!is_string()) wrong_type(*this, what, "a string");
  return std::get<std::string>(data_);
}

const Array& Value::as_array(std::string_view what) const {
  if (!is_array()) wrong_type(*this, what, "an array");
  return std::get<Array>(data_);
}

const Object& Value::as_object(std::string_view what) const {
  if (!is_object()) wrong_type(*this, what, "an object");
  return std::get<Object>(data_);
}

const Value* Value::find(const std::string& key) const {
  const Object& members = as_object("JSON value");
  auto it = members.find(key);
  return it == members.end() ? nullptr : &it->second;
}

Value parse(std::string_view text) { return Parser(text).document(); }

std::string quote(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string number(double value) {
  if (!std::isfinite(value)) throw Error("JSON cannot hold a non-finite number");
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  return std::string(buf, end);
}

}  // namespace ipad::json
