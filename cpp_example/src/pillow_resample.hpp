#pragma once

// Pillow's resampler (src/libImaging/Resample.c), ported to C++.
//
// The SDK resizes every input with Pillow (`Image.resize(..., BICUBIC)`) and the heatmap with
// Pillow (mode "F", BILINEAR). A C++ program must produce the same network input and the same
// mask, and no general-purpose resizer (OpenCV, stb, ...) rounds exactly like Pillow does, so the
// algorithm is ported here: antialiased separable convolution with the filter support scaled by
// the downscale factor, 8-bit images in 22-bit fixed point with clipping to 8 bits between the
// horizontal and the vertical pass, float images in double precision.
//
// Pillow's licence (MIT-CMU, also known as HPND), which covers this port:
//   Copyright (c) 1997-2011 by Secret Labs AB
//   Copyright (c) 1995-2011 by Fredrik Lundh and contributors
//   Copyright (c) 2010 by Jeffrey 'Alex' Clark and contributors
//   Permission to use, copy, modify and distribute this software and its documentation for any
//   purpose and without fee is hereby granted, provided that the above copyright notice appears
//   in all copies, and that both that copyright notice and this permission notice appear in
//   supporting documentation, and that the name of Secret Labs AB or the author not be used in
//   advertising or publicity pertaining to distribution of the software without specific,
//   written prior permission.
//   SECRET LABS AB AND THE AUTHOR DISCLAIMS ALL WARRANTIES WITH REGARD TO THIS SOFTWARE,
//   INCLUDING ALL IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS. IN NO EVENT SHALL SECRET
//   LABS AB OR THE AUTHOR BE LIABLE FOR ANY SPECIAL, INDIRECT OR CONSEQUENTIAL DAMAGES OR ANY
//   DAMAGES WHATSOEVER RESULTING FROM LOSS OF USE, DATA OR PROFITS, WHETHER IN AN ACTION OF
//   CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF OR IN CONNECTION WITH THE USE
//   OR PERFORMANCE OF THIS SOFTWARE.

#include <vector>

#include "rgb_image.hpp"

namespace ipad {

// `Image.resize((out_width, out_height), Image.Resampling.BICUBIC)` of an RGB image.
RgbImage resize_bicubic(const RgbImage& image, int out_width, int out_height);

// `Image.resize((out_width, out_height), Image.Resampling.BILINEAR)` of a mode "F" image.
std::vector<float> resize_bilinear(const std::vector<float>& plane, int width, int height,
                                   int out_width, int out_height);

}  // namespace ipad
