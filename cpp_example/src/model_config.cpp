#include "model_config.hpp"

#include <set>

#include "error.hpp"
#include "json.hpp"

namespace ipad {
namespace {

std::array<double, 3> three_numbers(const json::Value& v, const char* name) {
  const json::Array& items = v.as_array(name);
  if (items.size() != 3) throw Error(std::string(name) + " needs 3 values");
  return {items[0].as_number(name), items[1].as_number(name), items[2].as_number(name)};
}

}  // namespace

ModelConfig parse_model_config(const std::string& json_text, const std::string& source) {
  const std::string prefix = source + ": invalid model config: ";
  try {
    const json::Value root = json::parse(json_text);
    root.as_object("model config");
    ModelConfig config;
    const json::Value* size = root.find("image_size");
    if (size == nullptr) throw Error("'image_size' is missing");
    config.image_size = static_cast<int>(size->as_integer("image_size"));
    if (config.image_size <= 0) throw Error("image_size must be positive");
    if (const json::Value* v = root.find("format_version")) {
      config.format_version = static_cast<int>(v->as_integer("format_version"));
      if (config.format_version > 1) {
        throw Error("format version " + std::to_string(config.format_version) +
                    " is newer than this program supports (1)");
      }
    }
    if (const json::Value* v = root.find("mean")) config.mean = three_numbers(*v, "mean");
    if (const json::Value* v = root.find("std")) config.std = three_numbers(*v, "std");
    for (double s : config.std) {
      if (!(s > 0)) throw Error("std values must be > 0");
    }
    if (const json::Value* v = root.find("classes")) {
      config.classes.clear();
      for (const json::Value& name : v->as_array("classes")) {
        config.classes.push_back(name.as_string("a class name"));
      }
    }
    const std::set<std::string> distinct(config.classes.begin(), config.classes.end());
    if (config.classes.size() < 2 || distinct.size() != config.classes.size()) {
      throw Error("classes must be >= 2 distinct names (the first is 'clean')");
    }
    for (auto [key, field] : {std::pair{"image_threshold", &config.image_threshold},
                              std::pair{"pixel_threshold", &config.pixel_threshold}}) {
      if (const json::Value* v = root.find(key)) *field = v->as_number(key);
      if (!(*field >= 0.0 && *field <= 1.0)) throw Error(std::string(key) + " must be in [0, 1]");
    }
    return config;
  } catch (const Error& e) {
    throw Error(prefix + e.what());
  }
}

}  // namespace ipad
