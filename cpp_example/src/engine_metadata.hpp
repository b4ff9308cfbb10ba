#pragma once

// An engine plan's metadata: the JSON sidecar `<plan>.json` written by export/build_trt.py, read
// and checked as ipad_sdk.metadata.read_engine_metadata does.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "model_config.hpp"

namespace ipad {

struct TensorInfo {
  std::string mode;   // "input" or "output"
  std::string dtype;  // TensorRT DataType name: "FLOAT", "HALF", "UINT8", ...
  std::vector<std::int64_t> shape;  // -1 for the dynamic batch dimension
};

struct TensorRtInfo {
  std::string flavour;    // "tensorrt" or "tensorrt-rtx"
  std::string version;
  std::string target_sm;  // e.g. "86", or "local" for full TensorRT
  std::int64_t profile_min = 0, profile_opt = 0, profile_max = 0;  // batch sizes
  std::map<std::string, TensorInfo> io;
  std::int64_t plan_bytes = 0;
  std::string plan_sha256;
};

struct EngineMetadata {
  ModelConfig config;
  int format_version = 0;
  std::string precision;     // "fp32", "fp16" or "int8"
  std::string input_format;  // "float" (normalised) or "uint8" (normalised in the graph)
  std::string source_sha256;
  TensorRtInfo tensorrt;
};

// `<plan>.json`.
std::string engine_sidecar_path(const std::string& plan);

// Reads and checks the sidecar of `plan`: format "ipad-engine", format_version <= 1, a valid
// config, and a plan whose size and SHA-256 match the sidecar (else: "rebuild the engine").
// Throws ipad::Error.
EngineMetadata read_engine_metadata(const std::string& plan);

}  // namespace ipad
