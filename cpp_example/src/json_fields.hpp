#pragma once

// JSON through nlohmann/json: parsing, typed access whose errors name the field
// ("profile.max must be a number, got string") the way the SDK's messages do, and writing.
// Included by the .cpp files only; ipad_core's public headers do not expose nlohmann/json.

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "error.hpp"

namespace ipad::json_fields {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;  // keeps the SDK's key order when writing records

// One JSON line: compact, non-ASCII as \uXXXX (like Python's json.dumps), invalid UTF-8 (a file
// name that is not UTF-8) replaced by U+FFFD instead of throwing.
inline std::string dump(const OrderedJson& value) {
  return value.dump(-1, ' ', true, OrderedJson::error_handler_t::replace);
}

// Parses one JSON document; throws ipad::Error "JSON error: ..." with nlohmann's line and column.
inline Json parse(std::string_view text) {
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& e) {
    throw Error(std::string("JSON error: ") + e.what());
  }
}

[[noreturn]] inline void wrong_type(const Json& v, std::string_view what, const char* expected) {
  throw Error(std::string(what) + " must be " + expected + ", got " + v.type_name());
}

// Member `key` of `object` (which must be an object), or nullptr when absent.
inline const Json* find(const Json& object, const std::string& key, std::string_view where) {
  if (!object.is_object()) wrong_type(object, where, "an object");
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

// Member `key` of `object`; throws "<where> has no '<key>'" when absent.
inline const Json& member(const Json& object, const std::string& key, const std::string& where) {
  const Json* v = find(object, key, where);
  if (v == nullptr) throw Error(where + " has no '" + key + "'");
  return *v;
}

inline double number(const Json& v, std::string_view what) {
  if (!v.is_number()) wrong_type(v, what, "a number");
  return v.get<double>();
}

// A number with no fractional part (1 and 1.0 both read as 1, as in the SDK's checks).
inline std::int64_t integer(const Json& v, std::string_view what) {
  if (v.is_number_unsigned() && v.get<std::uint64_t>() > std::uint64_t{INT64_MAX}) {
    throw Error(std::string(what) + " is out of range: " + v.dump());
  }
  if (v.is_number_integer()) return v.get<std::int64_t>();
  const double d = number(v, what);
  if (!(std::floor(d) == d && std::fabs(d) < 9.007199254740992e15)) {
    throw Error(std::string(what) + " must be an integer, got " + v.dump());
  }
  return static_cast<std::int64_t>(d);
}

inline const std::string& string(const Json& v, std::string_view what) {
  if (!v.is_string()) wrong_type(v, what, "a string");
  return v.get_ref<const std::string&>();
}

inline const Json& array(const Json& v, std::string_view what) {
  if (!v.is_array()) wrong_type(v, what, "an array");
  return v;
}

inline const Json& object(const Json& v, std::string_view what) {
  if (!v.is_object()) wrong_type(v, what, "an object");
  return v;
}

}  // namespace ipad::json_fields
