#include "image_io.hpp"

#include <cstdio>
#include <csetjmp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

// clang-format off
#include <jpeglib.h>  // needs <cstdio> first
#include <jerror.h>
// clang-format on
#include <png.h>

#include "error.hpp"

// libjpeg and libpng report errors by longjmp. Each call into them is made from a small function
// that holds setjmp and owns no C++ object, so a jump never skips a destructor; the decoder
// state and the buffers live in the caller's frame.

namespace ipad {
namespace {

std::vector<std::uint8_t> read_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(path + ": file not found");
  if (fs::is_directory(path, ec)) throw Error(path + ": is a directory, not an image file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot read file");
  std::vector<std::uint8_t> data((std::istreambuf_iterator<char>(in)),
                                 std::istreambuf_iterator<char>());
  if (data.empty()) throw Error(path + ": file is empty (0 bytes)");
  return data;
}

void check_size(std::int64_t width, std::int64_t height, const std::string& path,
                std::int64_t max_pixels) {
  if (width <= 0 || height <= 0) {
    throw Error(path + ": image has zero size (" + std::to_string(width) + "x" +
                std::to_string(height) + ")");
  }
  if (width * height > max_pixels) {
    throw Error(path + ": image is " + std::to_string(width) + "x" + std::to_string(height) +
                " pixels, above the limit of " + std::to_string(max_pixels) +
                " (possible decompression bomb)");
  }
}

// Interleaved samples with `channels` per pixel (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) -> RGB.
RgbImage to_rgb(const std::vector<std::uint8_t>& samples, int width, int height, int channels) {
  RgbImage image{width, height, {}};
  const std::size_t count = static_cast<std::size_t>(width) * height;
  image.pixels.resize(count * 3);
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint8_t* s = &samples[i * channels];
    const bool gray = channels < 3;
    image.pixels[i * 3 + 0] = s[0];
    image.pixels[i * 3 + 1] = gray ? s[0] : s[1];
    image.pixels[i * 3 + 2] = gray ? s[0] : s[2];
  }
  return image;
}

// ---- JPEG ----------------------------------------------------------------------------------

struct JpegDecoder {
  jpeg_decompress_struct cinfo{};
  jpeg_error_mgr err{};
  std::jmp_buf jump{};
  char message[JMSG_LENGTH_MAX] = {};
  bool created = false;
  bool truncated = false;
  ~JpegDecoder() {
    if (created) jpeg_destroy_decompress(&cinfo);
  }
};

JpegDecoder& decoder_of(j_common_ptr cinfo) {
  return *static_cast<JpegDecoder*>(cinfo->client_data);
}

void jpeg_error_exit(j_common_ptr cinfo) {
  JpegDecoder& d = decoder_of(cinfo);
  (*cinfo->err->format_message)(cinfo, d.message);
  std::longjmp(d.jump, 1);
}

void jpeg_emit_message(j_common_ptr cinfo, int level) {
  // Warnings are not printed; running out of data is an error, as it is for Pillow.
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) decoder_of(cinfo).truncated = true;
}

bool jpeg_header(JpegDecoder& d, const std::vector<std::uint8_t>& data) {
  if (setjmp(d.jump)) return false;
  jpeg_create_decompress(&d.cinfo);
  d.cinfo.client_data = &d;
  d.created = true;
  jpeg_mem_src(&d.cinfo, data.data(), static_cast<unsigned long>(data.size()));
  jpeg_read_header(&d.cinfo, TRUE);
  return true;
}

bool jpeg_pixels(JpegDecoder& d, std::vector<std::uint8_t>& samples) {
  if (setjmp(d.jump)) return false;
  jpeg_start_decompress(&d.cinfo);
  const std::size_t stride = static_cast<std::size_t>(d.cinfo.output_width) *
                             static_cast<std::size_t>(d.cinfo.output_components);
  samples.resize(stride * d.cinfo.output_height);
  while (d.cinfo.output_scanline < d.cinfo.output_height) {
    JSAMPROW row = &samples[d.cinfo.output_scanline * stride];
    jpeg_read_scanlines(&d.cinfo, &row, 1);
  }
  jpeg_finish_decompress(&d.cinfo);
  return true;
}

// See ipad_sdk/io.py JPEG_MAX_PIXELS_PER_BYTE: more pixels per byte than this is a truncated or
// forged file that libjpeg would silently fill with gray.
constexpr std::int64_t kJpegMaxPixelsPerByte = 2048;

RgbImage decode_jpeg(const std::vector<std::uint8_t>& data, const std::string& path,
                     std::int64_t max_pixels) {
  JpegDecoder d;
  d.cinfo.err = jpeg_std_error(&d.err);
  d.err.error_exit = jpeg_error_exit;
  d.err.emit_message = jpeg_emit_message;
  if (!jpeg_header(d, data)) throw Error(path + ": cannot read image header: " + d.message);
  const std::int64_t width = d.cinfo.image_width, height = d.cinfo.image_height;
  check_size(width, height, path, max_pixels);
  if (width * height > kJpegMaxPixelsPerByte * static_cast<std::int64_t>(data.size())) {
    throw Error(path + ": truncated or corrupt JPEG: it declares " + std::to_string(width) + "x" +
                std::to_string(height) + " pixels but holds only " + std::to_string(data.size()) +
                " bytes, too few to encode them");
  }
  switch (d.cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE: d.cinfo.out_color_space = JCS_GRAYSCALE; break;
    case JCS_RGB:
    case JCS_YCbCr: d.cinfo.out_color_space = JCS_RGB; break;
    default: throw Error(path + ": CMYK/YCCK JPEGs are not supported by this program");
  }
  std::vector<std::uint8_t> samples;
  if (!jpeg_pixels(d, samples)) {
    throw Error(path + ": cannot decode image (truncated or corrupt): " + d.message);
  }
  if (d.truncated) {
    throw Error(path + ": cannot decode image (truncated or corrupt): image file is truncated");
  }
  return to_rgb(samples, static_cast<int>(width), static_cast<int>(height),
                d.cinfo.output_components);
}

// ---- PNG -----------------------------------------------------------------------------------

struct PngDecoder {
  png_structp png = nullptr;
  png_infop info = nullptr;
  const std::vector<std::uint8_t>* data = nullptr;
  std::size_t pos = 0;
  char message[256] = {};
  ~PngDecoder() { png_destroy_read_struct(&png, info ? &info : nullptr, nullptr); }
};

void png_error_fn(png_structp png, png_const_charp text) {
  auto* d = static_cast<PngDecoder*>(png_get_error_ptr(png));
  std::snprintf(d->message, sizeof d->message, "%s", text);
  png_longjmp(png, 1);
}

void png_warning_fn(png_structp, png_const_charp) {}

void png_read_fn(png_structp png, png_bytep out, png_size_t size) {
  auto* d = static_cast<PngDecoder*>(png_get_io_ptr(png));
  if (d->data->size() - d->pos < size) png_error(png, "image file is truncated");
  std::memcpy(out, d->data->data() + d->pos, size);
  d->pos += size;
}

bool png_header(PngDecoder& d) {
  if (setjmp(png_jmpbuf(d.png))) return false;
  png_set_read_fn(d.png, &d, png_read_fn);
  png_read_info(d.png, d.info);
  return true;
}

// Expands palettes and 1/2/4-bit gray to 8 bits; 16-bit files stay 16-bit for the SDK's
// round(v / 257) (16-bit gray with alpha too: the SDK keeps both bytes of its gray).
bool png_configure(PngDecoder& d) {
  if (setjmp(png_jmpbuf(d.png))) return false;
  const int color_type = png_get_color_type(d.png, d.info);
  const int bit_depth = png_get_bit_depth(d.png, d.info);
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(d.png);
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(d.png);
  png_set_interlace_handling(d.png);
  png_read_update_info(d.png, d.info);
  return true;
}

bool png_pixels(PngDecoder& d, std::vector<png_bytep>& rows) {
  if (setjmp(png_jmpbuf(d.png))) return false;
  png_read_image(d.png, rows.data());
  return true;
}

RgbImage decode_png(const std::vector<std::uint8_t>& data, const std::string& path,
                    std::int64_t max_pixels) {
  PngDecoder d;
  d.data = &data;
  d.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &d, png_error_fn, png_warning_fn);
  if (d.png != nullptr) d.info = png_create_info_struct(d.png);
  if (d.info == nullptr) throw Error(path + ": out of memory");
  png_set_user_limits(d.png, 0x7fffffff, 0x7fffffff);  // the pixel limit below applies instead
  if (!png_header(d)) throw Error(path + ": cannot read image header: " + d.message);
  const std::int64_t width = png_get_image_width(d.png, d.info);
  const std::int64_t height = png_get_image_height(d.png, d.info);
  check_size(width, height, path, max_pixels);
  if (!png_configure(d)) throw Error(path + ": cannot read image header: " + d.message);
  const int channels = png_get_channels(d.png, d.info);
  const bool wide = png_get_bit_depth(d.png, d.info) == 16;
  const std::size_t stride = png_get_rowbytes(d.png, d.info);
  std::vector<std::uint8_t> samples(stride * height);
  std::vector<png_bytep> rows(height);
  for (std::int64_t y = 0; y < height; ++y) rows[y] = &samples[y * stride];
  if (!png_pixels(d, rows)) {
    throw Error(path + ": cannot decode image (truncated or corrupt): " + d.message);
  }
  if (wide) {  // 16-bit samples, big-endian: round(v / 257) (never a tie) = (v + 128) / 257
    for (std::size_t i = 0; i < samples.size() / 2; ++i) {
      const unsigned v = unsigned(samples[2 * i]) << 8 | samples[2 * i + 1];
      samples[i] = static_cast<std::uint8_t>((v + 128) / 257);
    }
  }
  return to_rgb(samples, static_cast<int>(width), static_cast<int>(height), channels);
}

}  // namespace

RgbImage load_image(const std::string& path, std::int64_t max_pixels) {
  const std::vector<std::uint8_t> data = read_file(path);
  static const std::uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (data.size() >= 8 && std::memcmp(data.data(), kPngSignature, 8) == 0) {
    return decode_png(data, path, max_pixels);
  }
  if (data.size() >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) {
    return decode_jpeg(data, path, max_pixels);
  }
  throw Error(path + ": not a JPEG or PNG file (the only formats this program decodes)");
}

void write_gray_png(const std::string& path, const std::vector<std::uint8_t>& gray, int width,
                    int height) {
  if (gray.size() != static_cast<std::size_t>(width) * height) {
    throw Error(path + ": mask size does not match " + std::to_string(width) + "x" +
                std::to_string(height));
  }
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(width);
  image.height = static_cast<png_uint_32>(height);
  image.format = PNG_FORMAT_GRAY;
  const std::string tmp = path + ".tmp";
  if (!png_image_write_to_file(&image, tmp.c_str(), 0, gray.data(), 0, nullptr)) {
    std::remove(tmp.c_str());
    throw Error(path + ": cannot write PNG: " + image.message);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error(path + ": cannot write PNG: rename failed");
  }
}

}  // namespace ipad
