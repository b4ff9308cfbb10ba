#include <iostream>

#include "check.hpp"

namespace ipad::testing {

std::map<std::string, std::function<void()>>& registry() {
  static std::map<std::string, std::function<void()>> cases;
  return cases;
}

}  // namespace ipad::testing

// ipad_core_tests NAME runs one case; without a name, every case.
int main(int argc, char** argv) {
  const auto& cases = ipad::testing::registry();
  if (argc > 2) {
    std::cerr << "usage: ipad_core_tests [CASE]\n";
    return 2;
  }
  int failed = 0;
  for (const auto& [name, body] : cases) {
    if (argc == 2 && name != argv[1]) continue;
    try {
      body();
      std::cout << "ok   " << name << "\n";
    } catch (const std::exception& e) {
      std::cout << "FAIL " << name << ": " << e.what() << "\n";
      ++failed;
    }
  }
  if (argc == 2 && cases.count(argv[1]) == 0) {
    std::cerr << "unknown test case " << argv[1] << "\n";
    return 2;
  }
  return failed == 0 ? 0 : 1;
}
