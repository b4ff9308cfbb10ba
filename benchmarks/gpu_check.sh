#!/usr/bin/env bash
# One-shot GPU check for a bare lent GPU box (torch preinstalled, no package registry), from a
# checkout, sized for <= 8 minutes on one H100 (the step limits below add up to 470 s):
#   wheels     open_clip, ftfy, wcwidth, cuda-bindings from the carried .whl/ (when not importable)
#   preflight  the GPU, the driver, the C compiler, and real imports of what the steps need
#   tests      GPU-marked tests and the FP16/thread tests of the detector
#   parity     default model: CUDA FP32 / FP16 fast path vs CPU FP32; fails beyond 2e-3 / 1e-2 or
#              on any differing label (benchmarks/results/gpu_parity.json)
#   stand-in   the TensorRT backend's buffers, stream and profile with real cuda-bindings on a
#              STAND-IN engine (FP16 graph in torch; not TensorRT) (gpu_stand_in.json)
#   throughput eager FP32 vs FP16 (+ torch.compile where `cc` exists) with the roofline share of
#              the detected card (gpu_check.json/.md, rewritten after every row)
#
#   bash benchmarks/gpu_check.sh        # exit status: the number of failed steps
#
# No `set -e`: every step runs under `timeout`; after each, the results and logs are copied to
# $OUT (when set), a failed step is reported in gpu_check_steps.txt and the next step runs.
# Make the wheels on a machine with a registry:
#   pip download --no-deps --python-version 3.12 --only-binary=:all: -d .whl \
#       open_clip_torch==3.3.0 ftfy wcwidth 'cuda-bindings>=13,<14' cuda-pathfinder
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
source benchmarks/gpu_check_steps.sh
site=$(mktemp -d)
export PYTHONPATH="$site:$PWD"

install_wheels() {
  if python -c "import open_clip, cuda.bindings" 2>/dev/null; then echo "already importable"; return 0; fi
  pip install --quiet --no-index --no-deps --target "$site" .whl/*.whl
}

preflight() {
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  command -v cc && cc --version | head -1 || echo "no C compiler (cc): torch.compile rows will be skipped"
  python - <<'PY'
import numpy, PIL, pytest, safetensors, torch, torchvision, open_clip  # noqa: F401 (real imports)
from cuda.bindings import runtime
print("torch", torch.__version__, "cuda", torch.version.cuda, "open_clip", open_clip.__version__)
assert torch.cuda.is_available(), "torch sees no CUDA GPU"
print(torch.cuda.get_device_name(), "cuda-bindings device count:", runtime.cudaGetDeviceCount())
PY
}

gpu_tests() {
  python -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py
  local a=$?
  python -m pytest -q -p no:cacheprovider tests/test_detector.py -k "fp16 or threads"
  local b=$?
  return $((a || b))
}

export site
export -f install_wheels preflight gpu_tests
step wheels 30 install_wheels
step preflight 40 preflight
step tests 80 gpu_tests
step parity 60 python benchmarks/gpu_check.py parity
step stand-in 60 python benchmarks/gpu_check.py stand-in
step throughput 200 python benchmarks/gpu_check.py throughput
echo "== steps"
cat "$RESULTS/gpu_check_steps.txt"
exit "$failed"
