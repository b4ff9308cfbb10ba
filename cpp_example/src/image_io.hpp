#pragma once

// Image files in and out. Decoding follows ipad_sdk/io.py for JPEG and PNG, with one difference:
// the SDK applies the EXIF orientation of a photo, this code does not (rotate such photos first,
// or the heatmap and mask come out in the stored orientation).
//
// Conversions as in the SDK: grayscale -> RGB; alpha dropped; palette -> its colours; 16-bit
// grayscale and gray + alpha PNGs -> round(v / 257) of the gray; other 16-bit PNGs (RGB, RGBA) ->
// as the SDK reads them. CMYK JPEGs are refused.

#include <cstdint>
#include <string>
#include <vector>

#include "rgb_image.hpp"

namespace ipad {

// The SDK's default pixel limit (ipad_sdk.io.DEFAULT_MAX_PIXELS), checked from the header.
constexpr std::int64_t kDefaultMaxPixels = 178956970;

// Decodes a JPEG or PNG file; throws ipad::Error naming the file and the problem.
RgbImage load_image(const std::string& path, std::int64_t max_pixels = kDefaultMaxPixels);

// Writes an 8-bit grayscale PNG (e.g. a 0/255 mask) of width x height bytes, atomically.
void write_gray_png(const std::string& path, const std::vector<std::uint8_t>& gray, int width,
                    int height);

}  // namespace ipad
