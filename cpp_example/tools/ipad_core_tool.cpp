// Command-line access to ipad_core for tests and scripts (no TensorRT involved):
//
//   ipad_core_tool decode IMAGE OUT.rgb
//       writes the decoded image as H x W x 3 uint8; prints {"width": W, "height": H}
//   ipad_core_tool preprocess IMAGE SIZE MEAN0 MEAN1 MEAN2 STD0 STD1 STD2 OUT.bin
//       writes the 3 x SIZE x SIZE float32 network input; prints {"width": W, "height": H}
//   ipad_core_tool meta PLAN
//       prints the checked metadata of the engine PLAN (from PLAN.json) as JSON
//   ipad_core_tool postprocess PROBS.bin SIZE HEIGHT WIDTH IMAGE_THR PIXEL_THR MASK.png CLASS...
//       PROBS.bin: K float32 class probabilities, then K x SIZE x SIZE pixel probabilities;
//       writes the 0/255 mask PNG and prints the JSON line of `ipad detect`
//
// Errors go to stderr with exit status 1; a usage error exits with 2.

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "engine_metadata.hpp"
#include "error.hpp"
#include "image_io.hpp"
#include "json_fields.hpp"
#include "postprocess.hpp"
#include "preprocess.hpp"

namespace {

template <typename T>
void write_binary(const std::string& path, const std::vector<T>& values) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(values.data()),
            static_cast<std::streamsize>(values.size() * sizeof(T)));
  if (!out) throw ipad::Error(path + ": cannot write");
}

std::vector<float> read_floats(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw ipad::Error(path + ": cannot open");
  std::vector<float> values(static_cast<std::size_t>(in.tellg()) / sizeof(float));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(values.data()),
          static_cast<std::streamsize>(values.size() * sizeof(float)));
  return values;
}

using ipad::json_fields::OrderedJson;

std::string size_json(const ipad::RgbImage& image) {
  return ipad::json_fields::dump({{"width", image.width}, {"height", image.height}});
}

std::string metadata_json(const ipad::EngineMetadata& m) {
  const ipad::ModelConfig& c = m.config;
  const ipad::TensorRtInfo& t = m.tensorrt;
  OrderedJson io = OrderedJson::object();
  for (const auto& [name, tensor] : t.io) {
    io[name] = {{"mode", tensor.mode}, {"dtype", tensor.dtype}, {"shape", tensor.shape}};
  }
  const OrderedJson config = {
      {"image_size", c.image_size},           {"mean", c.mean},
      {"std", c.std},                         {"classes", c.classes},
      {"image_threshold", c.image_threshold}, {"pixel_threshold", c.pixel_threshold}};
  const OrderedJson tensorrt = {
      {"flavour", t.flavour},
      {"version", t.version},
      {"target_sm", t.target_sm},
      {"profile", {{"min", t.profile_min}, {"opt", t.profile_opt}, {"max", t.profile_max}}},
      {"io", io},
      {"plan_bytes", t.plan_bytes},
      {"plan_sha256", t.plan_sha256}};
  return ipad::json_fields::dump({{"format_version", m.format_version},
                                  {"precision", m.precision},
                                  {"input_format", m.input_format},
                                  {"source_sha256", m.source_sha256},
                                  {"config", config},
                                  {"tensorrt", tensorrt}});
}

int run(const std::vector<std::string>& args) {
  const std::string command = args.empty() ? "" : args[0];
  if (command == "decode" && args.size() == 3) {
    const ipad::RgbImage image = ipad::load_image(args[1]);
    write_binary(args[2], image.pixels);
    std::cout << size_json(image) << "\n";
    return 0;
  }
  if (command == "preprocess" && args.size() == 10) {
    const ipad::RgbImage image = ipad::load_image(args[1]);
    const std::array<double, 3> mean{std::stod(args[3]), std::stod(args[4]), std::stod(args[5])};
    const std::array<double, 3> std_dev{std::stod(args[6]), std::stod(args[7]), std::stod(args[8])};
    write_binary(args[9], ipad::preprocess(image, std::stoi(args[2]), mean, std_dev));
    std::cout << size_json(image) << "\n";
    return 0;
  }
  if (command == "meta" && args.size() == 2) {
    std::cout << metadata_json(ipad::read_engine_metadata(args[1])) << "\n";
    return 0;
  }
  if (command == "postprocess" && args.size() >= 10) {
    ipad::ModelConfig config;
    config.image_size = std::stoi(args[2]);
    config.image_threshold = std::stod(args[5]);
    config.pixel_threshold = std::stod(args[6]);
    config.classes.assign(args.begin() + 8, args.end());
    const int height = std::stoi(args[3]), width = std::stoi(args[4]);
    const std::vector<float> probs = read_floats(args[1]);
    const std::size_t k = config.classes.size();
    const std::size_t plane = static_cast<std::size_t>(config.image_size) * config.image_size;
    if (probs.size() != k + k * plane) throw ipad::Error(args[1] + ": wrong number of values");
    const ipad::Detection d = ipad::detection_from_probs(probs.data(), probs.data() + k,
                                                         config.image_size, config, height, width);
    ipad::write_gray_png(args[7], ipad::mask_image(d), d.width, d.height);
    std::cout << ipad::to_json_line(d, args[1], args[7]) << "\n";
    return 0;
  }
  std::cerr << "usage: ipad_core_tool decode|preprocess|meta|postprocess ... (see the source)\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::exception& e) {
    std::cerr << "ipad_core_tool: " << e.what() << "\n";
    return 1;
  }
}
