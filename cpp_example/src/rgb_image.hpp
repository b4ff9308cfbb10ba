#pragma once

#include <cstdint>
#include <vector>

namespace ipad {

// An 8-bit RGB image, rows top to bottom, pixels interleaved (R, G, B).
struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<std::uint8_t> pixels;  // width * height * 3
};

}  // namespace ipad
