#include "engine_metadata.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "error.hpp"
#include "json.hpp"
#include "sha256.hpp"

namespace ipad {
namespace {

namespace fs = std::filesystem;

const json::Value& member(const json::Value& object, const std::string& key,
                          const std::string& in) {
  const json::Value* v = object.find(key);
  if (v == nullptr) throw Error(in + " has no '" + key + "'");
  return *v;
}

TensorRtInfo parse_tensorrt(const json::Value& trt) {
  TensorRtInfo info;
  info.flavour = member(trt, "flavour", "tensorrt").as_string("tensorrt.flavour");
  info.version = member(trt, "version", "tensorrt").as_string("tensorrt.version");
  info.target_sm = member(trt, "target_sm", "tensorrt").as_string("tensorrt.target_sm");
  const json::Value& profile = member(trt, "profile", "tensorrt");
  info.profile_min = member(profile, "min", "tensorrt.profile").as_integer("profile.min");
  info.profile_opt = member(profile, "opt", "tensorrt.profile").as_integer("profile.opt");
  info.profile_max = member(profile, "max", "tensorrt.profile").as_integer("profile.max");
  for (const auto& [name, tensor] : member(trt, "io", "tensorrt").as_object("tensorrt.io")) {
    const std::string where = "tensorrt.io." + name;
    TensorInfo t;
    t.mode = member(tensor, "mode", where).as_string(where + ".mode");
    t.dtype = member(tensor, "dtype", where).as_string(where + ".dtype");
    for (const json::Value& d : member(tensor, "shape", where).as_array(where + ".shape")) {
      t.shape.push_back(d.as_integer(where + ".shape"));
    }
    info.io.emplace(name, std::move(t));
  }
  info.plan_bytes = member(trt, "plan_bytes", "tensorrt").as_integer("tensorrt.plan_bytes");
  info.plan_sha256 = member(trt, "plan_sha256", "tensorrt").as_string("tensorrt.plan_sha256");
  return info;
}

// The sidecar's string-valued keys, checked like read_exported_metadata(..., "ipad-engine").
void parse_exported_fields(const json::Value& root, const std::string& sidecar,
                           EngineMetadata& meta) {
  auto text = [&](const char* key) -> std::string {
    const json::Value* v = root.find(key);
    return v != nullptr && v->is_string() ? v->as_string(key) : std::string();
  };
  const json::Value* config = root.find("ipad_config");
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
  meta.config = parse_model_config(config->as_string("ipad_config"), sidecar);
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
  json::Value root;
  try {
    root = json::parse(text.str());
  } catch (const Error& e) {
    throw Error(sidecar + ": unreadable engine metadata: " + e.what());
  }
  const json::Value* trt = root.is_object() ? root.find("tensorrt") : nullptr;
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
