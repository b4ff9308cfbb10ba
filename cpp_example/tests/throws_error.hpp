#pragma once

#include <gmock/gmock.h>

#include <string>

#include "error.hpp"

namespace ipad::testing {

// Matches a callable that throws ipad::Error with `part` in its message:
// EXPECT_THAT([&] { load_image(path); }, ThrowsError("file not found")).
inline auto ThrowsError(const std::string& part) {
  return ::testing::ThrowsMessage<Error>(::testing::HasSubstr(part));
}

}  // namespace ipad::testing
