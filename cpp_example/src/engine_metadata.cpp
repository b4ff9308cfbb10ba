#include "engine_metadata.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "error.hpp"
#include "json_fields.hpp"
#include "sha256.hpp"

namespace ipad {
namespace {

namespace fs = std::filesystem;
using json_fields::Json;
using json_fields::member;

TensorRtInfo parse_tensorrt(const Json& trt) {
  using json_fields::integer;
  using json_fields::string;
  TensorRtInfo info;
  info.flavour = string(member(trt, "flavour", "tensorrt"), "tensorrt.flavour");
  info.version = string(member(trt, "version", "tensorrt"), "tensorrt.version");
  info.target_sm = string(member(trt, "target_sm", "tensorrt"), "tensorrt.target_sm");
  const Json& profile = member(trt, "profile", "tensorrt");
  info.profile_min = integer(member(profile, "min", "tensorrt.profile"), "profile.min");
  info.profile_opt = integer(member(profile, "opt", "tensorrt.profile"), "profile.opt");
  info.profile_max = integer(member(profile, "max", "tensorrt.profile"), "profile.max");
  const Json& io = json_fields::object(member(trt, "io", "tensorrt"), "tensorrt.io");
  for (const auto& [name, tensor] : io.items()) {
    const std::string where = "tensorrt.io." + name;
    TensorInfo t;
    t.mode = string(member(tensor, "mode", where), where + ".mode");
    t.dtype = string(member(tensor, "dtype", where), where + ".dtype");
    for (const Json& d : json_fields::array(member(tensor, "shape", where), where + ".shape")) {
      t.shape.push_back(integer(d, where + ".shape"));
    }
    info.io.emplace(name, std::move(t));
  }
  info.plan_bytes = integer(member(trt, "plan_bytes", "tensorrt"), "tensorrt.plan_bytes");
  info.plan_sha256 = string(member(trt, "plan_sha256", "tensorrt"), "tensorrt.plan_sha256");
  return info;
}

// The sidecar's string-valued keys, checked like read_exported_metadata(..., "ipad-engine").
void parse_exported_fields(const Json& root, const std::string& sidecar, EngineMetadata& meta) {
  auto text = [&](const char* key) -> std::string {
    const Json* v = json_fields::find(root, key, sidecar);
    return v != nullptr && v->is_string() ? v->get<std::string>() : std::string();
  };
  const Json* config = json_fields::find(root, "ipad_config", sidecar);
  if (text("format") != "ipad-engine" || config == nullptr || !config->is_string()) {
    throw Error(sidecar + ": not an ipad-sdk ipad-engine file (metadata 'format' is '" +
                text("format") + "'); export one with export/export_onnx.py");
  }
  const std::string version = text("format_version");
  const bool digits = !version.empty() && version.size() < 9 &&
                      version.find_first_not_of("0123456789") == std::string::npos;
  if (!digits || std::stoi(version) > 1) {
    throw Error(sidecar + ": format version '" + version +
                "' is not supported by this program (reads <= 1); upgrade it or re-export");
  }
  meta.format_version = std::stoi(version);
  meta.precision = text("precision");
  meta.input_format = text("input_format");
  const bool precision_ok =
      meta.precision == "fp32" || meta.precision == "fp16" || meta.precision == "int8";
  if (!precision_ok || (meta.input_format != "float" && meta.input_format != "uint8")) {
    throw Error(sidecar + ": bad precision/input_format metadata ('" + meta.precision + "', '" +
                meta.input_format + "')");
  }
  meta.source_sha256 = text("source_sha256");
  meta.config = parse_model_config(config->get<std::string>(), sidecar);
}

}  // namespace

std::string engine_sidecar_path(const std::string& plan) { return plan + ".json"; }

EngineMetadata read_engine_metadata(const std::string& plan) {
  const std::string sidecar = engine_sidecar_path(plan);
  std::error_code ec;
  if (!fs::is_regular_file(plan, ec)) throw Error(plan + ": engine file not found");
  std::ifstream in(sidecar, std::ios::binary);
  if (!in) {
    throw Error(plan + ": its metadata sidecar " + sidecar +
                " is missing; keep the .json written by export/build_trt.py beside the plan (or "
                "rebuild the engine)");
  }
  std::ostringstream text;
  text << in.rdbuf();
  Json root;
  try {
    root = json_fields::parse(text.str());
  } catch (const Error& e) {
    throw Error(sidecar + ": unreadable engine metadata: " + e.what());
  }
  const Json* trt = root.is_object() ? json_fields::find(root, "tensorrt", sidecar) : nullptr;
  if (trt == nullptr || !trt->is_object()) {
    throw Error(sidecar + ": not an ipad-sdk engine sidecar (no 'tensorrt' object)");
  }
  EngineMetadata meta;
  parse_exported_fields(root, sidecar, meta);
  try {
    meta.tensorrt = parse_tensorrt(*trt);
  } catch (const Error& e) {
    throw Error(sidecar + ": bad engine metadata: " + e.what());
  }
  const auto size = static_cast<std::int64_t>(fs::file_size(plan));
  if (size != meta.tensorrt.plan_bytes) {
    throw Error(plan + ": the plan is " + std::to_string(size) + " bytes but was built as " +
                std::to_string(meta.tensorrt.plan_bytes) +
                " (truncated or replaced); rebuild the engine with export/build_trt.py");
  }
  if (file_sha256(plan) != meta.tensorrt.plan_sha256) {
    throw Error(plan + ": the plan's SHA-256 does not match its sidecar (corrupt or replaced); "
                "rebuild the engine with export/build_trt.py");
  }
  return meta;
}

}  // namespace ipad
