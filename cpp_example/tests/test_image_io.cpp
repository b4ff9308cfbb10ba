#include <png.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "check.hpp"
#include "image_io.hpp"

namespace {

namespace fs = std::filesystem;

struct ScratchDir {
  fs::path path;
  explicit ScratchDir(const std::string& name)
      : path(fs::temp_directory_path() / ("ipad_core_tests_" + name)) {
    fs::create_directories(path);
  }
  ~ScratchDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

}  // namespace

TEST_CASE(png_roundtrip) {
  const ScratchDir dir("png_roundtrip");
  const std::vector<std::uint8_t> mask = {0, 255, 255, 0, 0, 255};
  ipad::write_gray_png(dir.file("mask.png"), mask, 3, 2);
  CHECK(!fs::exists(dir.file("mask.png.tmp")));
  const ipad::RgbImage image = ipad::load_image(dir.file("mask.png"));
  CHECK(image.width == 3 && image.height == 2);
  for (std::size_t i = 0; i < mask.size(); ++i) {
    for (int c = 0; c < 3; ++c) CHECK(image.pixels[i * 3 + c] == mask[i]);
  }
  CHECK_THROWS_WITH(ipad::write_gray_png(dir.file("bad.png"), mask, 4, 2), "mask size");
}

TEST_CASE(png_16bit_gray) {
  // 16-bit grayscale maps to 8 bits by round(v / 257), as ipad_sdk.io does.
  const ScratchDir dir("png_16bit");
  const std::vector<png_uint_16> values = {0, 128, 129, 385, 386, 65535};
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = 6;
  image.height = 1;
  image.format = PNG_FORMAT_LINEAR_Y;
  CHECK(png_image_write_to_file(&image, dir.file("g16.png").c_str(), 0, values.data(), 0,
                                nullptr));
  const ipad::RgbImage rgb = ipad::load_image(dir.file("g16.png"));
  const std::uint8_t expected[] = {0, 0, 1, 1, 2, 255};
  for (int x = 0; x < 6; ++x) {
    for (int c = 0; c < 3; ++c) CHECK(rgb.pixels[x * 3 + c] == expected[x]);
  }
}

TEST_CASE(image_errors) {
  const ScratchDir dir("image_errors");
  using ipad::load_image;
  CHECK_THROWS_WITH(load_image(dir.file("missing.png")), "missing.png: file not found");
  CHECK_THROWS_WITH(load_image(dir.path.string()), "is a directory");
  std::ofstream(dir.file("empty.png")).close();
  CHECK_THROWS_WITH(load_image(dir.file("empty.png")), "file is empty (0 bytes)");
  std::ofstream(dir.file("text.png")) << "hello";
  CHECK_THROWS_WITH(load_image(dir.file("text.png")), "not a JPEG or PNG file");

  ipad::write_gray_png(dir.file("big.png"), std::vector<std::uint8_t>(64 * 64, 7), 64, 64);
  CHECK_THROWS_WITH(load_image(dir.file("big.png"), 64 * 63), "above the limit");
  const auto size = fs::file_size(dir.file("big.png"));
  fs::resize_file(dir.file("big.png"), size - 20);  // cut into the image data
  CHECK_THROWS_WITH(load_image(dir.file("big.png")), "truncated or corrupt");
  std::ofstream(dir.file("bad.jpg"), std::ios::binary) << "\xFF\xD8\xFF\xE0garbage";
  CHECK_THROWS_WITH(load_image(dir.file("bad.jpg")), "cannot read image header");
}
