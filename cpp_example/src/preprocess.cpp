#include "preprocess.hpp"

#include "error.hpp"
#include "pillow_resample.hpp"

namespace ipad {

RgbImage resize_to_input(const RgbImage& image, int size) {
  if (size <= 0) throw Error("input size must be positive, got " + std::to_string(size));
  if (image.width == size && image.height == size) return image;
  return resize_bicubic(image, size, size);
}

std::vector<float> normalize_chw(const RgbImage& image, const std::array<double, 3>& mean,
                                 const std::array<double, 3>& std_dev) {
  const std::size_t area = static_cast<std::size_t>(image.width) * image.height;
  std::vector<float> chw(3 * area);
  for (int c = 0; c < 3; ++c) {
    // numpy: scale = float32(std) * 255.0 and offset = float32(mean) / float32(std), in float32.
    const float scale = static_cast<float>(std_dev[c]) * 255.0f;
    const float offset = static_cast<float>(mean[c]) / static_cast<float>(std_dev[c]);
    float* out = &chw[c * area];
    for (std::size_t i = 0; i < area; ++i) {
      out[i] = static_cast<float>(image.pixels[i * 3 + c]) / scale - offset;
    }
  }
  return chw;
}

std::vector<float> preprocess(const RgbImage& image, int size, const std::array<double, 3>& mean,
                              const std::array<double, 3>& std_dev) {
  return normalize_chw(resize_to_input(image, size), mean, std_dev);
}

std::vector<std::uint8_t> preprocess_uint8(const RgbImage& image, int size) {
  const RgbImage resized = resize_to_input(image, size);
  const std::size_t area = static_cast<std::size_t>(size) * size;
  std::vector<std::uint8_t> chw(3 * area);
  for (int c = 0; c < 3; ++c) {
    for (std::size_t i = 0; i < area; ++i) chw[c * area + i] = resized.pixels[i * 3 + c];
  }
  return chw;
}

}  // namespace ipad
