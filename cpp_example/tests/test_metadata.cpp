#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "engine_metadata.hpp"
#include "sha256.hpp"
#include "throws_error.hpp"

namespace {

namespace fs = std::filesystem;
using ipad::Sha256;
using ipad::testing::ThrowsError;

const char* kPlan = "not really a TensorRT plan";

// A valid sidecar once PLAN_BYTES and PLAN_SHA256 are filled in.
const char* kSidecar =
    R"({"format": "ipad-engine", "format_version": "1", "precision": "fp16",)"
    R"( "input_format": "float", "source_sha256": "abc",)"
    R"( "ipad_config": "{\"image_size\": 64, \"format_version\": 1,)"
    R"( \"classes\": [\"clean\", \"ghosting\", \"flare\", \"moire\"],)"
    R"( \"mean\": [0.5, 0.25, 0.125], \"std\": [0.5, 0.5, 0.5],)"
    R"( \"image_threshold\": 0.4, \"pixel_threshold\": 0.6}",)"
    R"( "tensorrt": {"flavour": "tensorrt-rtx", "version": "1.2", "target_sm": "86",)"
    R"( "profile": {"min": 1, "opt": 4, "max": 8},)"
    R"( "io": {"images": {"mode": "input", "dtype": "FLOAT", "shape": [-1, 3, 64, 64]},)"
    R"( "class_probs": {"mode": "output", "dtype": "FLOAT", "shape": [-1, 4]}},)"
    R"( "plan_bytes": PLAN_BYTES, "plan_sha256": "PLAN_SHA256"}})";

void write(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// A scratch folder with engine.plan and a sidecar whose `replace` text is swapped for `with`.
struct Engine {
  fs::path dir;
  std::string plan;
  Engine(const std::string& name, const std::string& replace = "", const std::string& with = "") {
    dir = fs::temp_directory_path() /
          ("ipad_core_tests_" + name + "_" + std::to_string(getpid()));
    fs::create_directories(dir);
    plan = (dir / "engine.plan").string();
    write(plan, kPlan);
    Sha256 sha;
    sha.update(reinterpret_cast<const std::uint8_t*>(kPlan), std::strlen(kPlan));
    std::string sidecar = kSidecar;
    sidecar.replace(sidecar.find("PLAN_BYTES"), 10, std::to_string(std::strlen(kPlan)));
    sidecar.replace(sidecar.find("PLAN_SHA256"), 11, sha.hex_digest());
    if (!replace.empty()) {
      const auto at = sidecar.find(replace);
      if (at == std::string::npos) throw std::logic_error("no '" + replace + "' in the sidecar");
      sidecar.replace(at, replace.size(), with);
    }
    write(plan + ".json", sidecar);
  }
  ~Engine() { fs::remove_all(dir); }
};

}  // namespace

TEST(EngineMetadata, Valid) {
  const Engine engine("valid");
  const ipad::EngineMetadata m = ipad::read_engine_metadata(engine.plan);
  EXPECT_EQ(m.format_version, 1);
  EXPECT_EQ(m.precision, "fp16");
  EXPECT_EQ(m.input_format, "float");
  EXPECT_EQ(m.source_sha256, "abc");
  EXPECT_EQ(m.config.image_size, 64);
  EXPECT_EQ(m.config.classes, (std::vector<std::string>{"clean", "ghosting", "flare", "moire"}));
  EXPECT_EQ(m.config.mean, (std::array<double, 3>{0.5, 0.25, 0.125}));
  EXPECT_EQ(m.config.std, (std::array<double, 3>{0.5, 0.5, 0.5}));
  EXPECT_EQ(m.config.image_threshold, 0.4);
  EXPECT_EQ(m.config.pixel_threshold, 0.6);
  EXPECT_EQ(m.tensorrt.flavour, "tensorrt-rtx");
  EXPECT_EQ(m.tensorrt.version, "1.2");
  EXPECT_EQ(m.tensorrt.target_sm, "86");
  EXPECT_EQ(m.tensorrt.profile_min, 1);
  EXPECT_EQ(m.tensorrt.profile_opt, 4);
  EXPECT_EQ(m.tensorrt.profile_max, 8);
  ASSERT_EQ(m.tensorrt.io.size(), 2u);
  EXPECT_EQ(m.tensorrt.io.at("images").shape, (std::vector<std::int64_t>{-1, 3, 64, 64}));
  EXPECT_EQ(m.tensorrt.io.at("images").dtype, "FLOAT");
  EXPECT_EQ(m.tensorrt.io.at("class_probs").mode, "output");
  EXPECT_EQ(m.tensorrt.plan_bytes, static_cast<std::int64_t>(std::strlen(kPlan)));
  EXPECT_EQ(ipad::engine_sidecar_path("a/b.plan"), "a/b.plan.json");
}

TEST(EngineMetadata, Errors) {
  using ipad::read_engine_metadata;
  EXPECT_THAT([] { read_engine_metadata("/nonexistent/x.plan"); },
              ThrowsError("engine file not found"));
  {
    Engine e("no_sidecar");
    fs::remove(e.plan + ".json");
    EXPECT_THAT([&] { read_engine_metadata(e.plan); }, ThrowsError("sidecar"));
  }
  {
    Engine e("truncated");
    write(e.plan, std::string(kPlan).substr(0, 10));
    EXPECT_THAT([&] { read_engine_metadata(e.plan); },
                ThrowsError("truncated or replaced); rebuild the engine"));
  }
  {
    Engine e("corrupt");
    std::string other = kPlan;
    other[0] = 'N';
    write(e.plan, other);
    EXPECT_THAT([&] { read_engine_metadata(e.plan); }, ThrowsError("SHA-256 does not match"));
  }
  const std::pair<std::pair<std::string, std::string>, std::string> cases[] = {
      {{"\"ipad-engine\"", "\"ipad-onnx\""}, "not an ipad-sdk ipad-engine file"},
      {{"\"format_version\": \"1\"", "\"format_version\": \"2\""}, "format version '2'"},
      {{"\"precision\": \"fp16\"", "\"precision\": \"fp64\""}, "bad precision/input_format"},
      {{"\"input_format\": \"float\"", "\"input_format\": \"rgb\""}, "bad precision"},
      {{"\"tensorrt\": {", "\"trt\": {"}, "no 'tensorrt' object"},
      {{"\"plan_bytes\"", "\"bytes\""}, "tensorrt has no 'plan_bytes'"},
      {{"\"max\": 8", "\"max\": \"8\""}, "profile.max must be a number, got string"},
      {{"\"min\": 1", "\"min\": 1.5"}, "profile.min must be an integer, got 1.5"},
      {{"\"io\": {", "\"io\": 5, \"x\": {"}, "tensorrt.io must be an object, got number"},
      {{"\"shape\": [-1, 4]", "\"shape\": -1"}, "tensorrt.io.class_probs.shape must be an array"},
      {{"\"source_sha256\": \"abc\",", "\"source_sha256\": \"abc\""}, "unreadable engine metadata"},
      {{"\\\"image_size\\\": 64", "\\\"image_size\\\": 0"}, "image_size must be positive"},
      {{"\\\"image_size\\\": 64", "\\\"image_size\\\": 9000"}, "image_size must be <= 8192"},
      {{"\\\"std\\\": [0.5, 0.5, 0.5]", "\\\"std\\\": [0.5, 0]"}, "std needs 3 values"},
      {{"\\\"image_threshold\\\": 0.4", "\\\"image_threshold\\\": 1.5"}, "image_threshold must"},
      {{"\\\"flare\\\", \\\"moire\\\"", "\\\"flare\\\", \\\"flare\\\""}, ">= 2 distinct names"},
      {{"\\\"format_version\\\": 1", "\\\"format_version\\\": 3"}, "format version 3"},
      {{"\\\"image_size\\\": 64,", "\\\"image_size\\\": 64"},
       "invalid model config: JSON error"},
  };
  int i = 0;
  for (const auto& [edit, error] : cases) {
    Engine e("case" + std::to_string(i++), edit.first, edit.second);
    EXPECT_THAT([&] { read_engine_metadata(e.plan); }, ThrowsError(error)) << edit.second;
  }
}
