#pragma once

// From the network's outputs to the result, as ipad_sdk/result.py (Result.from_probs, heatmap,
// mask, to_dict) does.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model_config.hpp"

namespace ipad {

struct Detection {
  std::string label;
  bool is_artifact = false;
  double artifact_score = 0.0;                         // 1 - P(clean)
  std::vector<std::pair<std::string, double>> scores;  // class name -> probability
  int width = 0, height = 0;                           // of the input image
  std::vector<float> heatmap;                          // height x width, 1 - P(clean) per pixel
  std::vector<std::uint8_t> mask;                      // height x width, 0 or 1
  double mask_fraction = 0.0;
};

// `class_probs` [K] and `pixel_probs` [K, size, size] of one image (K = config.classes.size()).
// label: classes[0] if artifact_score < image_threshold, else the most probable artifact class;
// heatmap: 1 - pixel_probs[0] resized to height x width (Pillow mode "F", bilinear) and clipped to
// [0, 1]; mask: heatmap >= pixel_threshold, all 0 for images labelled clean.
Detection detection_from_probs(const float* class_probs, const float* pixel_probs, int size,
                               const ModelConfig& config, int height, int width);

// The JSON record `ipad detect` writes (Result.to_dict, plus "mask" when a mask file was written).
std::string to_json_line(const Detection& detection, const std::string& source,
                         const std::string& mask_path = "");

// A JSON record for an input that failed (Failure.to_dict).
std::string failure_json_line(const std::string& source, const std::string& error);

// The mask as a 0/255 grayscale image.
std::vector<std::uint8_t> mask_image(const Detection& detection);

}  // namespace ipad
