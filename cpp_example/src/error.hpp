#pragma once

#include <stdexcept>
#include <string>

namespace ipad {

// Every failure of ipad_core: the message names the input (file, sidecar) and the problem.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace ipad
