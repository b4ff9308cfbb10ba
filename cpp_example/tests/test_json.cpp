#include <limits>

#include "check.hpp"
#include "json.hpp"

using ipad::json::parse;

TEST_CASE(json_values) {
  const auto v = parse(" {\"a\": [1, -2.5e3, 0, true, false, null], \"b\": {\"c\": 1E-2}} ");
  const auto& a = v.find("a")->as_array("a");
  CHECK(a.size() == 6);
  CHECK(a[0].as_integer("a0") == 1);
  CHECK(a[1].as_number("a1") == -2500.0);
  CHECK(a[3].as_bool("a3") && !a[4].as_bool("a4") && a[5].is_null());
  CHECK(v.find("b")->find("c")->as_number("c") == 0.01);
  CHECK(v.find("missing") == nullptr);
  CHECK(parse("9007199254740993").as_number("n") == 9007199254740992.0);
  CHECK(parse("1e-400").as_number("n") == 0.0);  // underflow reads as 0, as in Python
  CHECK(parse("[]").as_array("x").empty() && parse("{}").as_object("x").empty());
  CHECK(a[1].as_integer("a1") == -2500);
  CHECK_THROWS_WITH(parse("0.5").as_integer("half"), "half must be an integer, got 0.5");
  CHECK_THROWS_WITH(a[0].as_string("the name"), "the name must be a string, got a number");
}

TEST_CASE(json_strings) {
  CHECK(parse(R"("a\"b\\c\/d\b\f\n\r\t")").as_string("s") == "a\"b\\c/d\b\f\n\r\t");
  CHECK(parse(R"("\u00e9\u20AC")").as_string("s") == "\xC3\xA9\xE2\x82\xAC");      // é €
  CHECK(parse(R"("\ud83d\ude00")").as_string("s") == "\xF0\x9F\x98\x80");           // U+1F600
  CHECK(parse("\"\xC3\xA9 raw UTF-8\"").as_string("s") == "\xC3\xA9 raw UTF-8");
  CHECK(parse(R"("\u0000")").as_string("s") == std::string(1, '\0'));
}

TEST_CASE(json_malformed) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "unexpected end of input"},
      {"{", "expected a string key"},
      {"{\"a\" 1}", "expected ':'"},
      {"{\"a\": 1,}", "expected a string key"},
      {"[1, 2,]", "unexpected character"},
      {"[1 2]", "expected ',' or ']'"},
      {"{\"a\": 1} x", "unexpected text after the JSON value"},
      {"{\"a\": 1, \"a\": 2}", "duplicate object key"},
      {"01", "unexpected text after"},
      {"1.", "digits expected after '.'"},
      {"-", "invalid number"},
      {"1e", "digits expected in the exponent"},
      {"1e400", "number out of range"},
      {"NaN", "unexpected character"},
      {"tru", "invalid literal"},
      {"\"abc", "unterminated string"},
      {"\"a\tb\"", "control character"},
      {R"("\x")", "invalid escape"},
      {R"("\u12")", "invalid \\u escape"},
      {R"("\udc00")", "lone low surrogate"},
      {R"("\ud800x")", "high surrogate not followed"},
      {"\"\xC3\"", "invalid UTF-8"},
      {"\"\xC0\xAF\"", "invalid UTF-8"},
      {"\"\xED\xA0\x80\"", "invalid UTF-8"},  // an encoded surrogate
      {"// comment\n1", "unexpected character"},
  };
  for (const auto& [text, error] : cases) CHECK_THROWS_WITH(parse(text), error);
  CHECK_THROWS_WITH(parse("{\n  \"a\": [1,\n  x]}"), "line 3, column 3");
  CHECK_THROWS_WITH(parse(std::string(1000, '[') + std::string(1000, ']')), "nesting deeper");
}

TEST_CASE(json_writer) {
  using ipad::json::number;
  using ipad::json::quote;
  CHECK(quote("a\"b\\c\n\x01") == "\"a\\\"b\\\\c\\n\\u0001\"");
  CHECK(number(0.1) == "0.1" && number(1e-5) == "1e-05" && number(3.0) == "3");
  for (double v : {0.1, 1.0 / 3.0, 2.5e-300, 123456789.125, -0.75}) {
    CHECK(parse(number(v)).as_number("v") == v);
  }
  CHECK(parse(quote("é \"x\"\t")).as_string("s") == "é \"x\"\t");
  CHECK_THROWS_WITH(number(std::numeric_limits<double>::infinity()), "non-finite");
}
