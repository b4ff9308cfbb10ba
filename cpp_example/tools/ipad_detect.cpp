// ipad_detect: runs an ipad-sdk TensorRT engine on JPEG/PNG files and prints one JSON line per
// image, the records of `ipad detect`:
//
//   ipad_detect ENGINE.plan [--masks DIR] IMAGE...
//
// ENGINE.plan needs its sidecar ENGINE.plan.json (export/build_trt.py writes both). With --masks,
// DIR/<image file name>.png holds each 0/255 mask. Exit status: 0 all images done, 1 some images
// failed (each has an error record), 2 usage, engine or CUDA error.
//
// Uses the TensorRT C++ API common to TensorRT 10 and 11 and TensorRT for RTX (named I/O tensors,
// setInputShape, setTensorAddress, enqueueV3); linked only with -DIPAD_WITH_TENSORRT=ON. CI checks
// that it compiles warning-free (-Wall -Wextra -Werror) against the TensorRT 10.16 and 11.1
// headers in third_party/ and the CUDA 13.0 runtime headers (tests/test_cpp_tensorrt.py).

#include <NvInfer.h>
#include <NvInferVersion.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "engine_metadata.hpp"
#include "error.hpp"
#include "image_io.hpp"
#include "postprocess.hpp"
#include "preprocess.hpp"

// The flavour of TensorRT this program is compiled against, named as the sidecar's
// tensorrt.flavour names it (export/build_trt.py), and the headers' version in the format of
// getInferLibVersion(), (MAJOR * 100 + MINOR) * 100 + PATCH. TensorRT for RTX's NvInferVersion.h
// defines TRT_MAJOR_RTX; full TensorRT's defines NV_TENSORRT_MAJOR (10 and 11 are supported).
#if defined(TRT_MAJOR_RTX)
#define IPAD_TENSORRT_FLAVOUR "tensorrt-rtx"
#define IPAD_TENSORRT_HEADERS ((TRT_MAJOR_RTX * 100 + TRT_MINOR_RTX) * 100 + TRT_PATCH_RTX)
#elif NV_TENSORRT_MAJOR >= 10
#define IPAD_TENSORRT_FLAVOUR "tensorrt"
#define IPAD_TENSORRT_HEADERS \
  ((NV_TENSORRT_MAJOR * 100 + NV_TENSORRT_MINOR) * 100 + NV_TENSORRT_PATCH)
#else
#error "ipad_detect needs TensorRT 10 or later (named I/O tensors, enqueueV3, 64-bit Dims)"
#endif

namespace {

// "MAJOR.MINOR.PATCH" of a TensorRT version number (MAJOR * 100 + MINOR) * 100 + PATCH.
std::string version_text(std::int64_t version) {
  return std::to_string(version / 10000) + "." + std::to_string(version / 100 % 100) + "." +
         std::to_string(version % 100);
}

// The TensorRT library loaded at run time against the headers compiled in.
std::string library_versions() {
  return "library " + version_text(getInferLibVersion()) + ", headers " +
         version_text(IPAD_TENSORRT_HEADERS);
}

class Logger : public nvinfer1::ILogger {
  void log(Severity severity, const char* message) noexcept override {
    if (severity <= Severity::kWARNING) std::cerr << "TensorRT: " << message << "\n";
  }
};

// A CUDA or TensorRT failure: fatal for the run, unlike an unreadable image (ipad::Error).
class DeviceError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw DeviceError(std::string(what) + ": " + cudaGetErrorString(status));
  }
}

class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
    check_cuda(cudaMalloc(&ptr_, bytes), "cudaMalloc");
  }
  ~DeviceBuffer() { cudaFree(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return ptr_; }
  std::size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_;
};

std::size_t volume(const nvinfer1::Dims& dims) {
  std::size_t n = 1;
  for (int i = 0; i < dims.nbDims; ++i) {
    if (dims.d[i] < 0) throw ipad::Error("engine: an output shape is still dynamic");
    n *= static_cast<std::size_t>(dims.d[i]);
  }
  return n;
}

// The engine, one execution context and its device buffers, for batches of `batch` images.
class Detector {
 public:
  static constexpr const char* kInput = "images";
  static constexpr const char* kClassProbs = "class_probs";
  static constexpr const char* kPixelProbs = "pixel_probs";

  Detector(const std::string& plan_path, const ipad::EngineMetadata& meta) : meta_(meta) {
    if (meta.tensorrt.flavour != IPAD_TENSORRT_FLAVOUR) {
      throw ipad::Error(plan_path + ": the plan was built with " + meta.tensorrt.flavour + " " +
                        meta.tensorrt.version + " but this ipad_detect uses " +
                        IPAD_TENSORRT_FLAVOUR + "; rebuild the engine with export/build_trt.py "
                        "--flavour " + (meta.tensorrt.flavour == "tensorrt" ? "rtx" : "full") +
                        " or build ipad_detect against the other TensorRT");
    }
    std::ifstream in(plan_path, std::ios::binary);
    const std::vector<char> plan((std::istreambuf_iterator<char>(in)),
                                 std::istreambuf_iterator<char>());
    runtime_.reset(nvinfer1::createInferRuntime(logger_));
    if (!runtime_) {
      throw DeviceError("TensorRT: cannot create a runtime (" + library_versions() + ")");
    }
    engine_.reset(runtime_->deserializeCudaEngine(plan.data(), plan.size()));
    if (!engine_) {
      throw ipad::Error(plan_path + ": TensorRT " + version_text(getInferLibVersion()) +
                        " cannot load this plan, built with " + meta.tensorrt.flavour + " " +
                        meta.tensorrt.version + " for SM " + meta.tensorrt.target_sm +
                        " (another GPU or TensorRT version?); rebuild the engine");
    }
    check_io();
    context_.reset(engine_->createExecutionContext());
    if (!context_) throw ipad::Error("TensorRT: cannot create an execution context");

    // One image per run; an engine whose profile starts above 1 gets padding after it.
    batch_ = static_cast<std::size_t>(std::max<std::int64_t>(1, meta.tensorrt.profile_min));
    const int size = meta.config.image_size;
    nvinfer1::Dims input{};
    input.nbDims = 4;
    input.d[0] = static_cast<std::int64_t>(batch_);
    input.d[1] = 3;
    input.d[2] = size;
    input.d[3] = size;
    if (!context_->setInputShape(kInput, input)) throw ipad::Error("TensorRT: bad input shape");
    const std::size_t sample_bytes = meta.input_format == "uint8" ? 1 : sizeof(float);
    input_ = std::make_unique<DeviceBuffer>(volume(input) * sample_bytes);
    class_ = std::make_unique<DeviceBuffer>(volume(context_->getTensorShape(kClassProbs)) * 4);
    pixel_ = std::make_unique<DeviceBuffer>(volume(context_->getTensorShape(kPixelProbs)) * 4);
    const std::size_t k = meta.config.classes.size();
    const std::size_t plane = static_cast<std::size_t>(size) * size;
    if (class_->bytes() != batch_ * k * 4 || pixel_->bytes() != batch_ * k * plane * 4) {
      throw ipad::Error("engine: output shapes do not match the sidecar's classes and size");
    }
    if (!context_->setTensorAddress(kInput, input_->get()) ||
        !context_->setTensorAddress(kClassProbs, class_->get()) ||
        !context_->setTensorAddress(kPixelProbs, pixel_->get())) {
      throw DeviceError("TensorRT: cannot bind the I/O buffers");
    }
    check_cuda(cudaStreamCreate(&stream_), "cudaStreamCreate");
  }

  ~Detector() { cudaStreamDestroy(stream_); }
  Detector(const Detector&) = delete;
  Detector& operator=(const Detector&) = delete;

  // Runs one image (input bytes for one batch slot); fills the probabilities of that image.
  void run(const void* image_input, std::size_t bytes, std::vector<float>& class_probs,
           std::vector<float>& pixel_probs) {
    check_cuda(cudaMemsetAsync(input_->get(), 0, input_->bytes(), stream_), "cudaMemsetAsync");
    check_cuda(
        cudaMemcpyAsync(input_->get(), image_input, bytes, cudaMemcpyHostToDevice, stream_),
        "cudaMemcpyAsync");
    if (!context_->enqueueV3(stream_)) throw DeviceError("TensorRT: enqueueV3 failed");
    class_probs.resize(class_->bytes() / 4 / batch_);
    pixel_probs.resize(pixel_->bytes() / 4 / batch_);
    check_cuda(cudaMemcpyAsync(class_probs.data(), class_->get(), class_probs.size() * 4,
                               cudaMemcpyDeviceToHost, stream_),
               "cudaMemcpyAsync");
    check_cuda(cudaMemcpyAsync(pixel_probs.data(), pixel_->get(), pixel_probs.size() * 4,
                               cudaMemcpyDeviceToHost, stream_),
               "cudaMemcpyAsync");
    check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  }

 private:
  // The engine's I/O must be what export/export_onnx.py writes (names, modes, data types).
  void check_io() const {
    using nvinfer1::DataType;
    using nvinfer1::TensorIOMode;
    const DataType input_type =
        meta_.input_format == "uint8" ? DataType::kUINT8 : DataType::kFLOAT;
    const std::pair<const char*, TensorIOMode> expected[] = {
        {kInput, TensorIOMode::kINPUT},
        {kClassProbs, TensorIOMode::kOUTPUT},
        {kPixelProbs, TensorIOMode::kOUTPUT}};
    if (engine_->getNbIOTensors() != 3) throw ipad::Error("engine: expected 3 I/O tensors");
    for (const auto& [name, mode] : expected) {
      bool found = false;
      for (int i = 0; i < engine_->getNbIOTensors(); ++i) {
        found = found || std::string(engine_->getIOTensorName(i)) == name;
      }
      const DataType type = mode == TensorIOMode::kINPUT ? input_type : DataType::kFLOAT;
      if (!found || engine_->getTensorIOMode(name) != mode ||
          engine_->getTensorDataType(name) != type) {
        throw ipad::Error(std::string("engine: tensor '") + name +
                          "' is missing or has another mode or data type than the sidecar says");
      }
    }
  }

  ipad::EngineMetadata meta_;
  Logger logger_;
  std::unique_ptr<nvinfer1::IRuntime> runtime_;
  std::unique_ptr<nvinfer1::ICudaEngine> engine_;
  std::unique_ptr<nvinfer1::IExecutionContext> context_;
  std::unique_ptr<DeviceBuffer> input_, class_, pixel_;
  std::size_t batch_ = 1;
  cudaStream_t stream_{};
};

// One image -> its JSON line; throws ipad::Error for an input that cannot be read.
std::string detect(Detector& detector, const ipad::EngineMetadata& meta, const std::string& path,
                   const std::string& masks_dir) {
  const ipad::RgbImage image = ipad::load_image(path);
  const int size = meta.config.image_size;
  std::vector<float> class_probs, pixel_probs;
  if (meta.input_format == "uint8") {
    const std::vector<std::uint8_t> input = ipad::preprocess_uint8(image, size);
    detector.run(input.data(), input.size(), class_probs, pixel_probs);
  } else {
    const std::vector<float> input =
        ipad::preprocess(image, size, meta.config.mean, meta.config.std);
    detector.run(input.data(), input.size() * sizeof(float), class_probs, pixel_probs);
  }
  const ipad::Detection d = ipad::detection_from_probs(
      class_probs.data(), pixel_probs.data(), size, meta.config, image.height, image.width);
  std::string mask_path;
  if (!masks_dir.empty()) {
    mask_path = (std::filesystem::path(masks_dir) /
                 (std::filesystem::path(path).filename().string() + ".png"))
                    .string();
    ipad::write_gray_png(mask_path, ipad::mask_image(d), d.width, d.height);
  }
  return ipad::to_json_line(d, path, mask_path);
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  std::string masks_dir;
  std::vector<std::string> images;
  bool usage_error = args.empty() || args[0].rfind("--", 0) == 0;
  for (std::size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--masks" && i + 1 < args.size()) {
      masks_dir = args[++i];
    } else if (args[i].rfind("--", 0) == 0) {
      usage_error = true;  // an unknown option, or --masks without its folder
    } else {
      images.push_back(args[i]);
    }
  }
  if (usage_error || images.empty()) {
    std::cerr << "usage: ipad_detect ENGINE.plan [--masks DIR] IMAGE...\n"
              << "(built against " << IPAD_TENSORRT_FLAVOUR << " headers "
              << version_text(IPAD_TENSORRT_HEADERS) << ")\n";
    return 2;
  }
  try {
    const ipad::EngineMetadata meta = ipad::read_engine_metadata(args[0]);
    if (!masks_dir.empty()) std::filesystem::create_directories(masks_dir);
    Detector detector(args[0], meta);
    int failed = 0;
    for (const std::string& path : images) {
      try {
        std::cout << detect(detector, meta, path, masks_dir) << std::endl;
      } catch (const ipad::Error& e) {
        std::cout << ipad::failure_json_line(path, e.what()) << std::endl;
        ++failed;
      }
    }
    return failed == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "ipad_detect: " << e.what() << "\n";
    return 2;
  }
}
