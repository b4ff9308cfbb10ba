#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "pillow_resample.hpp"
#include "preprocess.hpp"

namespace {

// The pattern the expected values below were computed on with Pillow 13:
// pixel (x, y) channel c = (37 x + 91 y + 53 c) % 256.
ipad::RgbImage synthetic(int width, int height) {
  ipad::RgbImage image{width, height, {}};
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < 3; ++c) image.pixels.push_back((37 * x + 91 * y + 53 * c) % 256);
    }
  }
  return image;
}

}  // namespace

TEST(Resample, Identity) {
  const ipad::RgbImage image = synthetic(5, 4);
  EXPECT_EQ(ipad::resize_bicubic(image, 5, 4).pixels, image.pixels);
  EXPECT_EQ(ipad::resize_to_input(synthetic(8, 8), 8).pixels, synthetic(8, 8).pixels);
}

TEST(Resample, ConstantStaysConstant) {
  // Weights sum to one in fixed point up to rounding: a flat image stays flat at any scale.
  const std::array<std::array<int, 4>, 3> sizes{{{97, 13, 8, 8}, {3, 5, 64, 64}, {1, 1, 7, 3}}};
  for (auto [w, h, ow, oh] : sizes) {
    for (int value : {0, 1, 128, 254, 255}) {
      ipad::RgbImage image{w, h, std::vector<std::uint8_t>(w * h * 3, std::uint8_t(value))};
      const ipad::RgbImage out = ipad::resize_bicubic(image, ow, oh);
      ASSERT_EQ(out.width, ow);
      ASSERT_EQ(out.height, oh);
      for (std::uint8_t p : out.pixels) {
        ASSERT_EQ(p, value) << w << "x" << h << " -> " << ow << "x" << oh;
      }
    }
  }
}

TEST(Resample, PillowBicubicValues) {
  // Image.fromarray(synthetic).resize(size, Image.Resampling.BICUBIC), Pillow 13.0.0.
  const std::vector<std::uint8_t> down = {95,  124, 133, 130, 157, 134, 133, 127, 139,
                                          110, 136, 149, 116, 129, 121, 126, 140, 130};
  EXPECT_EQ(ipad::resize_bicubic(synthetic(7, 5), 3, 2).pixels, down);
  const std::vector<std::uint8_t> up = {
      0,   44,  97,  8,   61,  113, 36,  89,  144, 61,  114, 184, 89,  142, 216, 106, 159, 231,
      27,  78,  143, 42,  101, 166, 72,  136, 176, 106, 160, 124, 136, 188, 134, 152, 205, 157,
      89,  142, 195, 106, 159, 227, 134, 187, 209, 159, 212, 40,  187, 240, 22,  204, 255, 54,
      152, 216, 92,  179, 144, 115, 177, 74,  125, 76,  107, 73,  74,  137, 83,  101, 153, 106,
      187, 255, 18,  220, 128, 33,  199, 0,   65,  15,  31,  105, 0,   63,  136, 27,  80,  152};
  EXPECT_EQ(ipad::resize_bicubic(synthetic(4, 3), 6, 5).pixels, up);
}

TEST(Resample, PillowFloatBilinearValues) {
  // Image.fromarray(plane, mode="F").resize((5, 4), Image.Resampling.BILINEAR), Pillow 13.0.0.
  const std::vector<float> plane = {0.0f, 0.5f, 1.0f, 0.25f, 0.75f, 0.125f, 1.0f, 0.0f, 0.5f};
  const std::vector<float> expected = {
      0.0f,       0.20000000298023224f, 0.5f,        0.800000011920929f,  1.0f,
      0.15625f,   0.35624998807907104f, 0.65625f,    0.534375011920929f,  0.453125f,
      0.53125f,   0.5062500238418579f,  0.46875f,    0.34687501192092896f, 0.265625f,
      1.0f,       0.6000000238418579f,  0.0f,        0.30000001192092896f, 0.5f};
  EXPECT_EQ(ipad::resize_bilinear(plane, 3, 3, 5, 4), expected);
}

TEST(Preprocess, NormalizeChw) {
  ipad::RgbImage image{2, 1, {0, 255, 51, 255, 0, 102}};
  const auto chw = ipad::normalize_chw(image, {0.5, 0.25, 0.0}, {0.5, 0.25, 1.0});
  const std::vector<float> expected = {-1.0f, 1.0f, 3.0f, -1.0f, 0.2f, 0.4f};  // CHW order
  ASSERT_EQ(chw.size(), expected.size());
  for (std::size_t i = 0; i < chw.size(); ++i) EXPECT_NEAR(chw[i], expected[i], 1e-6f) << i;
  EXPECT_EQ(ipad::preprocess(image, 4, {0, 0, 0}, {1, 1, 1}).size(), 3u * 4 * 4);
  const auto u8 = ipad::preprocess_uint8(ipad::RgbImage{1, 1, {10, 20, 30}}, 2);
  EXPECT_EQ(u8, (std::vector<std::uint8_t>{10, 10, 10, 10, 20, 20, 20, 20, 30, 30, 30, 30}));
}
