#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "check.hpp"
#include "engine_metadata.hpp"
#include "sha256.hpp"

namespace {

namespace fs = std::filesystem;
using ipad::Sha256;

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
    dir = fs::temp_directory_path() / ("ipad_core_tests_" + name);
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
      CHECK(at != std::string::npos);
      sidecar.replace(at, replace.size(), with);
    }
    write(plan + ".json", sidecar);
  }
  ~Engine() { fs::remove_all(dir); }
};

}  // namespace

TEST_CASE(metadata_valid) {
  const Engine engine("valid");
  const ipad::EngineMetadata m = ipad::read_engine_metadata(engine.plan);
  CHECK(m.format_version == 1 && m.precision == "fp16" && m.input_format == "float");
  CHECK(m.config.image_size == 64 && m.config.classes.size() == 4);
  CHECK(m.config.mean[2] == 0.125 && m.config.std[0] == 0.5);
  CHECK(m.config.image_threshold == 0.4 && m.config.pixel_threshold == 0.6);
  CHECK(m.tensorrt.flavour == "tensorrt-rtx" && m.tensorrt.target_sm == "86");
  CHECK(m.tensorrt.profile_min == 1 && m.tensorrt.profile_opt == 4 && m.tensorrt.profile_max == 8);
  CHECK(m.tensorrt.io.at("images").shape == (std::vector<std::int64_t>{-1, 3, 64, 64}));
  CHECK(m.tensorrt.io.at("class_probs").mode == "output");
  CHECK(ipad::engine_sidecar_path("a/b.plan") == "a/b.plan.json");
}

TEST_CASE(metadata_errors) {
  using ipad::read_engine_metadata;
  CHECK_THROWS_WITH(read_engine_metadata("/nonexistent/x.plan"), "engine file not found");
  {
    Engine e("no_sidecar");
    fs::remove(e.plan + ".json");
    CHECK_THROWS_WITH(read_engine_metadata(e.plan), "sidecar");
  }
  {
    Engine e("truncated");
    write(e.plan, std::string(kPlan).substr(0, 10));
    CHECK_THROWS_WITH(read_engine_metadata(e.plan), "truncated or replaced); rebuild the engine");
  }
  {
    Engine e("corrupt");
    std::string other = kPlan;
    other[0] = 'N';
    write(e.plan, other);
    CHECK_THROWS_WITH(read_engine_metadata(e.plan), "SHA-256 does not match");
  }
  const std::pair<std::pair<std::string, std::string>, std::string> cases[] = {
      {{"\"ipad-engine\"", "\"ipad-onnx\""}, "not an ipad-sdk ipad-engine file"},
      {{"\"format_version\": \"1\"", "\"format_version\": \"2\""}, "format version '2'"},
      {{"\"precision\": \"fp16\"", "\"precision\": \"fp64\""}, "bad precision/input_format"},
      {{"\"input_format\": \"float\"", "\"input_format\": \"rgb\""}, "bad precision"},
      {{"\"tensorrt\": {", "\"trt\": {"}, "no 'tensorrt' object"},
      {{"\"plan_bytes\"", "\"bytes\""}, "tensorrt has no 'plan_bytes'"},
      {{"\"max\": 8", "\"max\": \"8\""}, "profile.max must be a number"},
      {{"\"source_sha256\": \"abc\",", "\"source_sha256\": \"abc\""}, "unreadable engine metadata"},
      {{"\\\"image_size\\\": 64", "\\\"image_size\\\": 0"}, "image_size must be positive"},
      {{"\\\"std\\\": [0.5, 0.5, 0.5]", "\\\"std\\\": [0.5, 0]"}, "std needs 3 values"},
      {{"\\\"image_threshold\\\": 0.4", "\\\"image_threshold\\\": 1.5"}, "image_threshold must"},
      {{"\\\"flare\\\", \\\"moire\\\"", "\\\"flare\\\", \\\"flare\\\""}, ">= 2 distinct names"},
      {{"\\\"format_version\\\": 1", "\\\"format_version\\\": 3"}, "format version 3"},
      {{"\\\"image_size\\\": 64,", "\\\"image_size\\\": 64"}, "invalid model config: JSON error"},
  };
  int i = 0;
  for (const auto& [edit, error] : cases) {
    Engine e("case" + std::to_string(i++), edit.first, edit.second);
    CHECK_THROWS_WITH(read_engine_metadata(e.plan), error);
  }
}
