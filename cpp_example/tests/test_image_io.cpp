#include <gtest/gtest.h>
#include <png.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "image_io.hpp"
#include "throws_error.hpp"

namespace {

namespace fs = std::filesystem;
using ipad::testing::ThrowsError;

struct ScratchDir {
  fs::path path;
  explicit ScratchDir(const std::string& name)
      : path(fs::temp_directory_path() /
             ("ipad_core_tests_" + name + "_" + std::to_string(getpid()))) {
    fs::create_directories(path);
  }
  ~ScratchDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

}  // namespace

TEST(ImageIo, PngRoundtrip) {
  const ScratchDir dir("png_roundtrip");
  const std::vector<std::uint8_t> mask = {0, 255, 255, 0, 0, 255};
  ipad::write_gray_png(dir.file("mask.png"), mask, 3, 2);
  EXPECT_FALSE(fs::exists(dir.file("mask.png.tmp")));
  const ipad::RgbImage image = ipad::load_image(dir.file("mask.png"));
  EXPECT_EQ(image.width, 3);
  EXPECT_EQ(image.height, 2);
  ASSERT_EQ(image.pixels.size(), mask.size() * 3);
  for (std::size_t i = 0; i < mask.size(); ++i) {
    for (int c = 0; c < 3; ++c) EXPECT_EQ(image.pixels[i * 3 + c], mask[i]) << i;
  }
  EXPECT_THAT([&] { ipad::write_gray_png(dir.file("bad.png"), mask, 4, 2); },
              ThrowsError("mask size"));
}

TEST(ImageIo, Png16BitGray) {
  // 16-bit grayscale maps to 8 bits by round(v / 257), as ipad_sdk.io does.
  const ScratchDir dir("png_16bit");
  const std::vector<png_uint_16> values = {0, 128, 129, 385, 386, 65535};
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = 6;
  image.height = 1;
  image.format = PNG_FORMAT_LINEAR_Y;
  ASSERT_TRUE(png_image_write_to_file(&image, dir.file("g16.png").c_str(), 0, values.data(), 0,
                                      nullptr));
  const ipad::RgbImage rgb = ipad::load_image(dir.file("g16.png"));
  const std::uint8_t expected[] = {0, 0, 1, 1, 2, 255};
  ASSERT_EQ(rgb.pixels.size(), 18u);
  for (int x = 0; x < 6; ++x) {
    for (int c = 0; c < 3; ++c) EXPECT_EQ(rgb.pixels[x * 3 + c], expected[x]) << x;
  }
}

TEST(ImageIo, Errors) {
  const ScratchDir dir("image_errors");
  using ipad::load_image;
  EXPECT_THAT([&] { load_image(dir.file("missing.png")); },
              ThrowsError("missing.png: file not found"));
  EXPECT_THAT([&] { load_image(dir.path.string()); }, ThrowsError("is a directory"));
  std::ofstream(dir.file("empty.png")).close();
  EXPECT_THAT([&] { load_image(dir.file("empty.png")); }, ThrowsError("file is empty (0 bytes)"));
  std::ofstream(dir.file("text.png")) << "hello";
  EXPECT_THAT([&] { load_image(dir.file("text.png")); }, ThrowsError("not a JPEG or PNG file"));

  ipad::write_gray_png(dir.file("big.png"), std::vector<std::uint8_t>(64 * 64, 7), 64, 64);
  EXPECT_THAT([&] { load_image(dir.file("big.png"), 64 * 63); }, ThrowsError("above the limit"));
  const auto size = fs::file_size(dir.file("big.png"));
  fs::resize_file(dir.file("big.png"), size - 20);  // cut into the image data
  EXPECT_THAT([&] { load_image(dir.file("big.png")); }, ThrowsError("truncated or corrupt"));
  std::ofstream(dir.file("bad.jpg"), std::ios::binary) << "\xFF\xD8\xFF\xE0garbage";
  EXPECT_THAT([&] { load_image(dir.file("bad.jpg")); }, ThrowsError("cannot read image header"));
}
