#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "check.hpp"
#include "json.hpp"
#include "postprocess.hpp"

namespace {

ipad::ModelConfig config(int size) {
  ipad::ModelConfig c;
  c.image_size = size;
  c.image_threshold = 0.5;
  c.pixel_threshold = 0.5;
  return c;  // classes: clean, ghosting, flare, moire
}

// Pixel probabilities with P(clean) = `clean` at every pixel of a size x size map.
std::vector<float> flat_pixels(int size, float clean) {
  std::vector<float> p(4 * size * size, (1.0f - clean) / 3);
  std::fill(p.begin(), p.begin() + size * size, clean);
  return p;
}

}  // namespace

TEST_CASE(postprocess_label_rule) {
  const auto pixels = flat_pixels(2, 0.2f);
  const float clean[] = {0.6f, 0.1f, 0.2f, 0.1f};
  auto d = ipad::detection_from_probs(clean, pixels.data(), 2, config(2), 2, 2);
  CHECK(d.label == "clean" && !d.is_artifact);
  CHECK(std::fabs(d.artifact_score - (1.0 - double(0.6f))) < 1e-15);
  CHECK(d.mask == std::vector<std::uint8_t>(4, 0) && d.mask_fraction == 0.0);  // clean: empty

  const float flare[] = {0.5f, 0.1f, 0.3f, 0.1f};  // artifact_score == threshold -> artifact
  d = ipad::detection_from_probs(flare, pixels.data(), 2, config(2), 2, 2);
  CHECK(d.label == "flare" && d.is_artifact);
  CHECK(d.mask == std::vector<std::uint8_t>(4, 1) && d.mask_fraction == 1.0);

  const float tie[] = {0.1f, 0.3f, 0.3f, 0.3f};  // equal maxima: the first, like np.argmax
  CHECK(ipad::detection_from_probs(tie, pixels.data(), 2, config(2), 2, 2).label == "ghosting");
  CHECK(d.scores.size() == 4 && d.scores[2].first == "flare" && d.scores[2].second == 0.3f);
}

TEST_CASE(postprocess_heatmap_and_mask) {
  // Left column of the 2x2 map is artifact (P(clean) 0), right column clean (P(clean) 1).
  std::vector<float> pixels = flat_pixels(2, 1.0f);
  pixels[0] = pixels[2] = 0.0f;
  const float probs[] = {0.1f, 0.9f, 0.0f, 0.0f};
  const auto d = ipad::detection_from_probs(probs, pixels.data(), 2, config(2), 3, 4);
  CHECK(d.width == 4 && d.height == 3 && d.heatmap.size() == 12);
  // Bilinear 2 -> 4 columns: 1, 0.75, 0.25, 0 on every row; mask where >= 0.5.
  const std::vector<float> row = {1.0f, 0.75f, 0.25f, 0.0f};
  for (int y = 0; y < 3; ++y) {
    for (int x = 0; x < 4; ++x) {
      CHECK(d.heatmap[y * 4 + x] == row[x]);
      CHECK(d.mask[y * 4 + x] == (x < 2));
    }
  }
  CHECK(d.mask_fraction == 0.5);
  CHECK((ipad::mask_image(d) == std::vector<std::uint8_t>{255, 255, 0, 0, 255, 255, 0, 0,
                                                           255, 255, 0, 0}));
}

TEST_CASE(postprocess_json_line) {
  const auto pixels = flat_pixels(2, 0.0f);
  const float probs[] = {0.25f, 0.5f, 0.125f, 0.125f};
  const auto d = ipad::detection_from_probs(probs, pixels.data(), 2, config(2), 2, 2);
  const std::string line = ipad::to_json_line(d, "dir/a \"b\".jpg", "masks/a.png");
  CHECK(line == "{\"source\": \"dir/a \\\"b\\\".jpg\", \"label\": \"ghosting\", "
                "\"is_artifact\": true, \"artifact_score\": 0.75, \"scores\": {\"clean\": 0.25, "
                "\"ghosting\": 0.5, \"flare\": 0.125, \"moire\": 0.125}, \"width\": 2, "
                "\"height\": 2, \"mask_fraction\": 1, \"mask\": \"masks/a.png\"}");
  CHECK(ipad::json::parse(line).find("scores")->find("clean")->as_number("s") == 0.25);
  const std::string failure = ipad::failure_json_line("x.png", "x.png: file not found");
  CHECK(ipad::json::parse(failure).find("error_type")->as_string("t") == "InputError");
}
