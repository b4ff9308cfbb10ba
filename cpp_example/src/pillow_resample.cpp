#include "pillow_resample.hpp"

#include <cmath>
#include <cstdint>

namespace ipad {
namespace {

struct Filter {
  double (*weight)(double x);
  double support;
};

double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  if (x < 1.0) return 1.0 - x;
  return 0.0;
}

double bicubic_filter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

constexpr Filter kBilinear{bilinear_filter, 1.0};
constexpr Filter kBicubic{bicubic_filter, 2.0};

// Per output position: the first input index, the number of taps, and `ksize` weights.
struct Coefficients {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<double> weights;  // out_size * ksize, normalised to sum 1
};

// Pillow's precompute_coeffs for the box (0, in_size): same expressions, same evaluation order.
Coefficients precompute_coeffs(int in_size, int out_size, const Filter& filter) {
  const float in0 = 0.0f, in1 = static_cast<float>(in_size);
  double scale = static_cast<double>(in1 - in0) / out_size;
  double filterscale = scale < 1.0 ? 1.0 : scale;
  double support = filter.support * filterscale;
  Coefficients c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(out_size);
  c.count.resize(out_size);
  c.weights.assign(static_cast<std::size_t>(out_size) * c.ksize, 0.0);
  for (int xx = 0; xx < out_size; ++xx) {
    double center = in0 + (xx + 0.5) * scale;
    double ww = 0.0;
    double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double* k = &c.weights[static_cast<std::size_t>(xx) * c.ksize];
    for (int x = 0; x < xmax; ++x) {
      double w = filter.weight((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x) {
      if (ww != 0.0) k[x] /= ww;
    }
    c.first[xx] = xmin;
    c.count[xx] = xmax;
  }
  return c;
}

// 8-bit samples: weights in fixed point with PRECISION_BITS fractional bits, a rounding bias,
// and the result clipped to 0..255 (Pillow's normalize_coeffs_8bpc and clip8).
struct Fixed8 {
  using Sample = std::uint8_t;
  using Weight = std::int32_t;
  using Sum = std::int32_t;
  static constexpr int kPrecisionBits = 32 - 8 - 2;

  static std::vector<Weight> weights(const std::vector<double>& k) {
    std::vector<Weight> fixed(k.size());
    for (std::size_t i = 0; i < k.size(); ++i) {
      fixed[i] = k[i] < 0 ? static_cast<Weight>(-0.5 + k[i] * (1 << kPrecisionBits))
                          : static_cast<Weight>(0.5 + k[i] * (1 << kPrecisionBits));
    }
    return fixed;
  }
  static Sum start() { return 1 << (kPrecisionBits - 1); }
  static Sample finish(Sum ss) {
    Sum v = ss >> kPrecisionBits;  // arithmetic shift, as in Pillow
    return static_cast<Sample>(v < 0 ? 0 : v > 255 ? 255 : v);
  }
};

// float samples (mode "F"): double weights and sums, stored back as float.
struct Float32 {
  using Sample = float;
  using Weight = double;
  using Sum = double;
  static std::vector<Weight> weights(const std::vector<double>& k) { return k; }
  static Sum start() { return 0.0; }
  static Sample finish(Sum ss) { return static_cast<Sample>(ss); }
};

// An interleaved image of `channels` samples per pixel.
template <typename S>
struct Plane {
  int width, height, channels;
  std::vector<S> data;
};

// Horizontal pass over input rows [row_offset, row_offset + rows).
template <typename T>
Plane<typename T::Sample> horizontal(const Plane<typename T::Sample>& in, int out_width,
                                     int row_offset, int rows, const Coefficients& c) {
  const std::vector<typename T::Weight> kk = T::weights(c.weights);
  const int ch = in.channels;
  Plane<typename T::Sample> out{out_width, rows, ch, {}};
  out.data.resize(static_cast<std::size_t>(out_width) * rows * ch);
  for (int yy = 0; yy < rows; ++yy) {
    const auto* row = &in.data[static_cast<std::size_t>(yy + row_offset) * in.width * ch];
    auto* dst = &out.data[static_cast<std::size_t>(yy) * out_width * ch];
    for (int xx = 0; xx < out_width; ++xx) {
      const auto* k = &kk[static_cast<std::size_t>(xx) * c.ksize];
      const int xmin = c.first[xx];
      for (int b = 0; b < ch; ++b) {
        typename T::Sum ss = T::start();
        for (int x = 0; x < c.count[xx]; ++x) ss += row[(x + xmin) * ch + b] * k[x];
        dst[xx * ch + b] = T::finish(ss);
      }
    }
  }
  return out;
}

// Vertical pass; `first_shift` moves the row bounds into the horizontally resampled strip.
template <typename T>
Plane<typename T::Sample> vertical(const Plane<typename T::Sample>& in, int out_height,
                                   int first_shift, const Coefficients& c) {
  const std::vector<typename T::Weight> kk = T::weights(c.weights);
  const int ch = in.channels;
  const std::size_t stride = static_cast<std::size_t>(in.width) * ch;
  Plane<typename T::Sample> out{in.width, out_height, ch, {}};
  out.data.resize(stride * out_height);
  for (int yy = 0; yy < out_height; ++yy) {
    const auto* k = &kk[static_cast<std::size_t>(yy) * c.ksize];
    const int ymin = c.first[yy] - first_shift;
    auto* dst = &out.data[static_cast<std::size_t>(yy) * stride];
    for (std::size_t i = 0; i < stride; ++i) {
      typename T::Sum ss = T::start();
      for (int y = 0; y < c.count[yy]; ++y) ss += in.data[(y + ymin) * stride + i] * k[y];
      dst[i] = T::finish(ss);
    }
  }
  return out;
}

// Pillow's ImagingResampleInner for the whole-image box. A pass whose size does not change is
// skipped. Horizontal pass first, computed only over the input rows the vertical pass reads;
// except that Pillow 13 runs the vertical pass first when the height shrinks by more than twice
// as many pixels as the width changes (python-pillow/Pillow#9549). That condition was not read
// from Pillow's source but measured against Pillow 13.0.0 (exact on every size tested); Pillow
// 10-12 always run the horizontal pass first, so their output differs for such sizes.
template <typename T>
Plane<typename T::Sample> resample(Plane<typename T::Sample> image, int out_width,
                                   int out_height, const Filter& filter) {
  const bool need_horizontal = out_width != image.width;
  const bool need_vertical = out_height != image.height;
  const Coefficients vert = precompute_coeffs(image.height, out_height, filter);
  const bool vertical_first = need_horizontal && out_height < image.height &&
                              image.height - out_height > 2 * (image.width - out_width);
  if (vertical_first) {
    image = vertical<T>(image, out_height, 0, vert);
    const Coefficients horiz = precompute_coeffs(image.width, out_width, filter);
    return horizontal<T>(image, out_width, 0, out_height, horiz);
  }
  const int ybox_first = vert.first.front();
  const int ybox_last = vert.first.back() + vert.count.back();
  int shift = 0;
  if (need_horizontal) {
    const Coefficients horiz = precompute_coeffs(image.width, out_width, filter);
    image = horizontal<T>(image, out_width, ybox_first, ybox_last - ybox_first, horiz);
    shift = ybox_first;
  }
  if (need_vertical) image = vertical<T>(image, out_height, shift, vert);
  return image;
}

}  // namespace

RgbImage resize_bicubic(const RgbImage& image, int out_width, int out_height) {
  Plane<std::uint8_t> plane{image.width, image.height, 3, image.pixels};
  plane = resample<Fixed8>(std::move(plane), out_width, out_height, kBicubic);
  return {plane.width, plane.height, std::move(plane.data)};
}

std::vector<float> resize_bilinear(const std::vector<float>& plane, int width, int height,
                                   int out_width, int out_height) {
  Plane<float> in{width, height, 1, plane};
  return resample<Float32>(std::move(in), out_width, out_height, kBilinear).data;
}

}  // namespace ipad
