#pragma once

// The part of the SDK's ModelConfig (ipad_sdk/metadata.py) an inference program needs. Missing
// optional keys take the SDK's defaults; present keys are validated like ModelConfig.validate.

#include <array>
#include <string>
#include <vector>

namespace ipad {

struct ModelConfig {
  int image_size = 0;
  std::array<double, 3> mean{0.48145466, 0.4578275, 0.40821073};  // OpenAI CLIP
  std::array<double, 3> std{0.26862954, 0.26130258, 0.27577711};
  std::vector<std::string> classes{"clean", "ghosting", "flare", "moire"};  // [0] is clean
  double image_threshold = 0.5;
  double pixel_threshold = 0.5;
  int format_version = 1;
};

// Parses the `ipad_config` JSON string; throws ipad::Error naming `source`.
ModelConfig parse_model_config(const std::string& json_text, const std::string& source);

}  // namespace ipad
