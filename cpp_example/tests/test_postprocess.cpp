#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

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

TEST(Postprocess, LabelRule) {
  const auto pixels = flat_pixels(2, 0.2f);
  const float clean[] = {0.6f, 0.1f, 0.2f, 0.1f};
  auto d = ipad::detection_from_probs(clean, pixels.data(), 2, config(2), 2, 2);
  EXPECT_EQ(d.label, "clean");
  EXPECT_FALSE(d.is_artifact);
  EXPECT_NEAR(d.artifact_score, 1.0 - double(0.6f), 1e-15);
  EXPECT_EQ(d.mask, std::vector<std::uint8_t>(4, 0));  // clean: empty
  EXPECT_EQ(d.mask_fraction, 0.0);

  const float flare[] = {0.5f, 0.1f, 0.3f, 0.1f};  // artifact_score == threshold -> artifact
  d = ipad::detection_from_probs(flare, pixels.data(), 2, config(2), 2, 2);
  EXPECT_EQ(d.label, "flare");
  EXPECT_TRUE(d.is_artifact);
  EXPECT_EQ(d.mask, std::vector<std::uint8_t>(4, 1));
  EXPECT_EQ(d.mask_fraction, 1.0);

  const float tie[] = {0.1f, 0.3f, 0.3f, 0.3f};  // equal maxima: the first, like np.argmax
  EXPECT_EQ(ipad::detection_from_probs(tie, pixels.data(), 2, config(2), 2, 2).label, "ghosting");
  ASSERT_EQ(d.scores.size(), 4u);
  EXPECT_EQ(d.scores[2].first, "flare");
  EXPECT_EQ(d.scores[2].second, 0.3f);
}

TEST(Postprocess, HeatmapAndMask) {
  // Left column of the 2x2 map is artifact (P(clean) 0), right column clean (P(clean) 1).
  std::vector<float> pixels = flat_pixels(2, 1.0f);
  pixels[0] = pixels[2] = 0.0f;
  const float probs[] = {0.1f, 0.9f, 0.0f, 0.0f};
  const auto d = ipad::detection_from_probs(probs, pixels.data(), 2, config(2), 3, 4);
  EXPECT_EQ(d.width, 4);
  EXPECT_EQ(d.height, 3);
  ASSERT_EQ(d.heatmap.size(), 12u);
  // Bilinear 2 -> 4 columns: 1, 0.75, 0.25, 0 on every row; mask where >= 0.5.
  const std::vector<float> row = {1.0f, 0.75f, 0.25f, 0.0f};
  for (int y = 0; y < 3; ++y) {
    for (int x = 0; x < 4; ++x) {
      EXPECT_EQ(d.heatmap[y * 4 + x], row[x]) << x << ", " << y;
      EXPECT_EQ(d.mask[y * 4 + x], x < 2) << x << ", " << y;
    }
  }
  EXPECT_EQ(d.mask_fraction, 0.5);
  EXPECT_EQ(ipad::mask_image(d),
            (std::vector<std::uint8_t>{255, 255, 0, 0, 255, 255, 0, 0, 255, 255, 0, 0}));
}

TEST(Postprocess, JsonLine) {
  const auto pixels = flat_pixels(2, 0.0f);
  const float probs[] = {0.25f, 0.5f, 0.125f, 0.125f};
  const auto d = ipad::detection_from_probs(probs, pixels.data(), 2, config(2), 2, 2);
  const std::string line = ipad::to_json_line(d, "dir/a \"b\".jpg", "masks/a.png");
  // The keys of Result.to_dict in its order; compact separators.
  EXPECT_EQ(line,
            R"({"source":"dir/a \"b\".jpg","label":"ghosting","is_artifact":true,)"
            R"("artifact_score":0.75,"scores":{"clean":0.25,"ghosting":0.5,"flare":0.125,)"
            R"("moire":0.125},"width":2,"height":2,"mask_fraction":1.0,"mask":"masks/a.png"})");
  const std::string failure = ipad::failure_json_line("x.png", "x.png: file not found");
  EXPECT_EQ(failure,
            R"({"source":"x.png","error_type":"InputError","error":"x.png: file not found"})");
}
