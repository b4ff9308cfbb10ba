#include "model_config.hpp"

#include <set>

#include "error.hpp"
#include "json_fields.hpp"

namespace ipad {
namespace {

using json_fields::Json;

std::array<double, 3> three_numbers(const Json& v, const char* name) {
  using json_fields::number;
  const Json& items = json_fields::array(v, name);
  if (items.size() != 3) throw Error(std::string(name) + " needs 3 values");
  return {number(items[0], name), number(items[1], name), number(items[2], name)};
}

}  // namespace

ModelConfig parse_model_config(const std::string& json_text, const std::string& source) {
  const std::string prefix = source + ": invalid model config: ";
  try {
    const Json root = json_fields::parse(json_text);
    auto find = [&root](const char* key) { return json_fields::find(root, key, "model config"); };
    ModelConfig config;
    const Json* size = find("image_size");
    if (size == nullptr) throw Error("'image_size' is missing");
    const std::int64_t image_size = json_fields::integer(*size, "image_size");
    if (image_size <= 0) throw Error("image_size must be positive");
    if (image_size > 8192) throw Error("image_size must be <= 8192 (the SDK's MAX_IMAGE_SIZE)");
    config.image_size = static_cast<int>(image_size);
    if (const Json* v = find("format_version")) {
      const std::int64_t version = json_fields::integer(*v, "format_version");
      if (version > 1) {
        throw Error("format version " + std::to_string(version) +
                    " is newer than this program supports (1)");
      }
      config.format_version = static_cast<int>(version);
    }
    if (const Json* v = find("mean")) config.mean = three_numbers(*v, "mean");
    if (const Json* v = find("std")) config.std = three_numbers(*v, "std");
    for (double s : config.std) {
      if (!(s > 0)) throw Error("std values must be > 0");
    }
    if (const Json* v = find("classes")) {
      config.classes.clear();
      for (const Json& name : json_fields::array(*v, "classes")) {
        config.classes.push_back(json_fields::string(name, "a class name"));
      }
    }
    const std::set<std::string> distinct(config.classes.begin(), config.classes.end());
    if (config.classes.size() < 2 || distinct.size() != config.classes.size()) {
      throw Error("classes must be >= 2 distinct names (the first is 'clean')");
    }
    for (auto [key, field] : {std::pair{"image_threshold", &config.image_threshold},
                              std::pair{"pixel_threshold", &config.pixel_threshold}}) {
      if (const Json* v = find(key)) *field = json_fields::number(*v, key);
      if (!(*field >= 0.0 && *field <= 1.0)) throw Error(std::string(key) + " must be in [0, 1]");
    }
    return config;
  } catch (const Error& e) {
    throw Error(prefix + e.what());
  }
}

}  // namespace ipad
