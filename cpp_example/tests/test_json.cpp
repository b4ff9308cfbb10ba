// ipad_core's use of nlohmann/json (src/json_fields.hpp): parse errors as ipad::Error, typed
// access naming the field, and the JSON lines as Python's json.loads reads them.

#include <gtest/gtest.h>

#include <string>

#include "json_fields.hpp"
#include "throws_error.hpp"

namespace {

using ipad::json_fields::Json;
using ipad::json_fields::OrderedJson;
using ipad::json_fields::parse;
using ipad::testing::ThrowsError;

}  // namespace

TEST(Json, TypedAccess) {
  const Json v = parse(" {\"a\": [1, -2.5e3, 0, true, 2.0, null], \"b\": {\"c\": 1E-2}} ");
  const Json& a = ipad::json_fields::array(ipad::json_fields::member(v, "a", "doc"), "a");
  ASSERT_EQ(a.size(), 6u);
  EXPECT_EQ(ipad::json_fields::integer(a[0], "a0"), 1);
  EXPECT_EQ(ipad::json_fields::number(a[1], "a1"), -2500.0);
  EXPECT_EQ(ipad::json_fields::integer(a[1], "a1"), -2500);
  EXPECT_EQ(ipad::json_fields::integer(a[4], "a4"), 2);  // 2.0 reads as an integer
  EXPECT_EQ(ipad::json_fields::number(v["b"]["c"], "c"), 0.01);
  EXPECT_EQ(ipad::json_fields::find(v, "missing", "doc"), nullptr);
  EXPECT_THAT([&] { ipad::json_fields::integer(parse("0.5"), "half"); },
              ThrowsError("half must be an integer, got 0.5"));
  EXPECT_THAT([&] { ipad::json_fields::string(a[0], "the name"); },
              ThrowsError("the name must be a string, got number"));
  EXPECT_THAT([&] { ipad::json_fields::number(a[3], "flag"); },
              ThrowsError("flag must be a number, got boolean"));
  EXPECT_THAT([&] { ipad::json_fields::member(v, "z", "the sidecar"); },
              ThrowsError("the sidecar has no 'z'"));
  EXPECT_THAT([&] { ipad::json_fields::find(a, "x", "tensorrt.io"); },
              ThrowsError("tensorrt.io must be an object, got array"));
  EXPECT_THAT([&] { ipad::json_fields::integer(parse("18446744073709551615"), "n"); },
              ThrowsError("n is out of range"));
}

TEST(Json, Strings) {
  EXPECT_EQ(parse(R"("a\"b\\c\/d\b\f\n\r\t")").get<std::string>(), "a\"b\\c/d\b\f\n\r\t");
  EXPECT_EQ(parse(R"("\u00e9\u20AC")").get<std::string>(), "\xC3\xA9\xE2\x82\xAC");  // é €
  EXPECT_EQ(parse(R"("\ud83d\ude00")").get<std::string>(), "\xF0\x9F\x98\x80");      // U+1F600
  EXPECT_THAT([] { parse(R"("\udc00")"); }, ThrowsError("JSON error"));  // Python accepts it
  EXPECT_EQ(parse(R"({"a": 1, "a": 2})")["a"], 2);  // a duplicate key: the last, as in Python
}

TEST(Json, MalformedInputIsAnIpadError) {
  for (const char* text : {"", "{", "{\"a\": 1,}", "[1 2]", "{\"a\": 1} x", "NaN", "\"abc",
                           "\"\xC3\"", "// comment\n1"}) {
    EXPECT_THAT([&] { parse(text); }, ThrowsError("JSON error: "))
        << text;
  }
  EXPECT_THAT([] { parse("{\n  \"a\": [1,\n  x]}"); },
              ThrowsError("line 3, column 3"));
}

TEST(Json, DumpReadsBackLikePython) {
  using ipad::json_fields::dump;
  // Non-ASCII as \uXXXX like json.dumps; control characters and quotes escaped.
  EXPECT_EQ(dump({{"s", "\xC3\xA9 \"x\"\t\x01"}}), R"({"s":"\u00e9 \"x\"\t\u0001"})");
  // Invalid UTF-8 (a file name that is not UTF-8) is replaced, not an exception.
  EXPECT_EQ(dump({{"s", "a\xFF" "b"}}), R"({"s":"a\ufffdb"})");
  EXPECT_EQ(dump({{"b", 1}, {"a", 2}}), R"({"b":1,"a":2})");  // insertion order, like to_dict
  // Doubles as text that reads back exactly (Python's repr reads them the same way).
  for (double v : {0.1, 1.0 / 3.0, 2.5e-300, 123456789.125, -0.75, double(0.7f)}) {
    EXPECT_EQ(parse(dump({{"v", v}}))["v"].get<double>(), v);
  }
  EXPECT_EQ(dump({{"v", 3.0}}), R"({"v":3.0})");
}
