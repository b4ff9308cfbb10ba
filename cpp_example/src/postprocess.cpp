#include "postprocess.hpp"

#include <algorithm>

#include "json_fields.hpp"
#include "pillow_resample.hpp"

namespace ipad {

Detection detection_from_probs(const float* class_probs, const float* pixel_probs, int size,
                               const ModelConfig& config, int height, int width) {
  Detection d;
  const std::size_t k = config.classes.size();
  for (std::size_t i = 0; i < k; ++i) d.scores.emplace_back(config.classes[i], class_probs[i]);
  d.artifact_score = 1.0 - static_cast<double>(class_probs[0]);
  std::size_t best = 1;  // np.argmax: the first of equal maxima
  for (std::size_t i = 2; i < k; ++i) {
    if (static_cast<double>(class_probs[i]) > static_cast<double>(class_probs[best])) best = i;
  }
  d.is_artifact = !(d.artifact_score < config.image_threshold);
  d.label = config.classes[d.is_artifact ? best : 0];
  d.width = width;
  d.height = height;

  // float32 arithmetic, as numpy does on the float32 plane.
  const std::size_t plane = static_cast<std::size_t>(size) * size;
  std::vector<float> artifact(plane);
  for (std::size_t i = 0; i < plane; ++i) artifact[i] = 1.0f - pixel_probs[i];
  if (size == height && size == width) {
    d.heatmap = std::move(artifact);  // the SDK neither resizes nor clips this case
  } else {
    d.heatmap = resize_bilinear(artifact, size, size, width, height);
    for (float& v : d.heatmap) v = std::clamp(v, 0.0f, 1.0f);
  }

  // In double, as the SDK compares: a float comparison would round the threshold (midway between
  // two calibration scores) onto one of them.
  d.mask.assign(d.heatmap.size(), 0);
  std::size_t inside = 0;
  if (d.is_artifact) {
    for (std::size_t i = 0; i < d.heatmap.size(); ++i) {
      d.mask[i] = static_cast<double>(d.heatmap[i]) >= config.pixel_threshold;
      inside += d.mask[i];
    }
  }
  d.mask_fraction = d.mask.empty() ? 0.0 : double(inside) / double(d.mask.size());
  return d;
}

std::string to_json_line(const Detection& d, const std::string& source,
                         const std::string& mask_path) {
  json_fields::OrderedJson scores = json_fields::OrderedJson::object();
  for (const auto& [name, p] : d.scores) scores[name] = p;
  json_fields::OrderedJson line = {
      {"source", source},          {"label", d.label},
      {"is_artifact", d.is_artifact}, {"artifact_score", d.artifact_score},
      {"scores", scores},          {"width", d.width},
      {"height", d.height},        {"mask_fraction", d.mask_fraction}};
  if (!mask_path.empty()) line["mask"] = mask_path;
  return json_fields::dump(line);
}

std::string failure_json_line(const std::string& source, const std::string& error) {
  return json_fields::dump(
      {{"source", source}, {"error_type", "InputError"}, {"error", error}});
}

std::vector<std::uint8_t> mask_image(const Detection& d) {
  std::vector<std::uint8_t> gray(d.mask.size());
  std::transform(d.mask.begin(), d.mask.end(), gray.begin(),
                 [](std::uint8_t m) { return static_cast<std::uint8_t>(m ? 255 : 0); });
  return gray;
}

}  // namespace ipad
