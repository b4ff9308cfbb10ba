#pragma once

// A small, strict JSON reader and the few writing helpers the JSON lines need.
// Hand-written so that the example builds with a bare toolchain plus libpng/libjpeg: the sidecar
// and the output records are the only JSON it touches, and a dependency just for them would be
// one more thing for a user to install. Strict means RFC 8259 only: no comments, trailing commas,
// NaN/Infinity, lone surrogates, invalid UTF-8 or duplicate object keys.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace ipad::json {

class Value;
using Array = std::vector<Value>;
using Object = std::map<std::string, Value>;

class Value {
 public:
  Value() = default;
  explicit Value(bool b) : data_(b) {}
  explicit Value(double d) : data_(d) {}
  explicit Value(std::string s) : data_(std::move(s)) {}
  explicit Value(Array a) : data_(std::move(a)) {}
  explicit Value(Object o) : data_(std::move(o)) {}

  bool is_null() const { return std::holds_alternative<std::nullptr_t>(data_); }
  bool is_bool() const { return std::holds_alternative<bool>(data_); }
  bool is_number() const { return std::holds_alternative<double>(data_); }
  bool is_string() const { return std::holds_alternative<std::string>(data_); }
  bool is_array() const { return std::holds_alternative<Array>(data_); }
  bool is_object() const { return std::holds_alternative<Object>(data_); }

  // Typed access; each throws ipad::Error naming `what` when the value has another type.
  bool as_bool(std::string_view what) const;
  double as_number(std::string_view what) const;
  std::int64_t as_integer(std::string_view what) const;  // a number with no fractional part
  const std::string& as_string(std::string_view what) const;
  const Array& as_array(std::string_view what) const;
  const Object& as_object(std::string_view what) const;

  // Member `key` of an object, or nullptr when absent (throws if this is not an object).
  const Value* find(const std::string& key) const;

 private:
  std::variant<std::nullptr_t, bool, double, std::string, Array, Object> data_{nullptr};
};

// Parses one JSON document; throws ipad::Error "JSON error at line L, column C: ...".
Value parse(std::string_view text);

// Writing: a quoted, escaped string; a number as the shortest text that reads back exactly.
std::string quote(std::string_view text);
std::string number(double value);

}  // namespace ipad::json
