#pragma once

// Network input preparation, as ipad_sdk/preprocess.py: the whole image is resized (not cropped)
// to size x size with Pillow's antialiased bicubic filter, then (x / 255 - mean) / std per
// channel, channels first.

#include <array>
#include <cstdint>
#include <vector>

#include "rgb_image.hpp"

namespace ipad {

// The image resized to size x size (returned unchanged when it already has that size).
RgbImage resize_to_input(const RgbImage& image, int size);

// HxWx3 uint8 -> 3xHxW float32 (x / 255 - mean) / std, rounded exactly as numpy float32 does:
// x / (std * 255) - mean / std.
std::vector<float> normalize_chw(const RgbImage& image, const std::array<double, 3>& mean,
                                 const std::array<double, 3>& std_dev);

// One image -> the 3 x size x size float32 input of a model exported with input_format "float".
std::vector<float> preprocess(const RgbImage& image, int size, const std::array<double, 3>& mean,
                              const std::array<double, 3>& std_dev);

// One image -> the 3 x size x size uint8 input of a model exported with input_format "uint8"
// (the graph normalises).
std::vector<std::uint8_t> preprocess_uint8(const RgbImage& image, int size);

}  // namespace ipad
