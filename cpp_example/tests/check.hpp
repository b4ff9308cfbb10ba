#pragma once

// A minimal test harness: TEST_CASE registers a function under a name; ipad_core_tests NAME runs
// it (CMakeLists.txt adds one ctest test per name). CHECK failures throw with file and line.

#include <functional>
#include <map>
#include <stdexcept>
#include <string>

namespace ipad::testing {

std::map<std::string, std::function<void()>>& registry();

struct Register {
  Register(const char* name, std::function<void()> body) { registry().emplace(name, body); }
};

[[noreturn]] inline void fail(const char* file, int line, const std::string& what) {
  throw std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": " + what);
}

}  // namespace ipad::testing

#define TEST_CASE(name)                                                      \
  static void test_##name();                                                 \
  static const ipad::testing::Register register_##name(#name, test_##name); \
  static void test_##name()

#define CHECK(condition)                                                                 \
  do {                                                                                   \
    if (!(condition)) ipad::testing::fail(__FILE__, __LINE__, "CHECK(" #condition ") failed"); \
  } while (false)

// Checks that `statement` throws an exception whose message contains `needle`.
#define CHECK_THROWS_WITH(statement, needle)                                              \
  do {                                                                                    \
    std::string message_;                                                                 \
    try {                                                                                 \
      statement;                                                                          \
    } catch (const std::exception& e) {                                                   \
      message_ = e.what();                                                                \
    }                                                                                     \
    if (message_.find(needle) == std::string::npos) {                                     \
      ipad::testing::fail(__FILE__, __LINE__,                                             \
                          "expected an error containing '" + std::string(needle) +        \
                              "' from " #statement ", got '" + message_ + "'");           \
    }                                                                                     \
  } while (false)
