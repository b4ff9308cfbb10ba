#!/usr/bin/env bash
# One-shot GPU check for a bare GPU box (torch preinstalled, no package registry), from a checkout:
#   GPU-marked tests, FP16-vs-FP32 parity on the default model, and the throughput table
#   (eager FP32 vs the FP16 fast path; IPAD-Small-ViT-16@224, ViT-B-16@224, ViT-L-14@518;
#   batch 1/8/16/32), all written to benchmarks/results/ (copied to $OUT when set).
#
#   bash benchmarks/gpu_check.sh [PEAK_CARD]      # PEAK_CARD: a row of benchmarks/flops.py, e.g. H100
#
# Python packages torch does not bring (open_clip and its two small dependencies) are installed
# from wheels carried in .whl/ (make them on a machine with a registry:
#   pip download --no-deps --python-version 3.12 --only-binary=:all: -d .whl \
#       open_clip_torch==3.3.0 ftfy wcwidth).
set -euo pipefail
cd "$(dirname "$0")/.."
card="${1:-H100}"
site=$(mktemp -d)
if ! python -c "import open_clip" 2>/dev/null; then
  pip install --quiet --no-index --no-deps --target "$site" .whl/*.whl
fi
export PYTHONPATH="$site:$PWD"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python - <<'EOF'
import importlib.util, sys
missing = [m for m in ("torch", "numpy", "PIL", "safetensors", "open_clip", "pytest")
           if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"gpu_check.sh: missing Python packages: {missing}")
EOF
mkdir -p benchmarks/results
echo "== GPU-marked tests and the GPU paths of the detector tests"
python -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider 2>&1 | tail -5
python -m pytest -q tests/test_detector.py -k "fp16 or threads" -p no:cacheprovider 2>&1 | tail -3
echo "== FP16 fast path vs eager FP32 on the default model (CUDA) and FP32 on the CPU"
python - <<'EOF' | tee benchmarks/results/gpu_parity.txt
import warnings
import numpy as np
from ipad_sdk import Detector
warnings.simplefilter("ignore")
rng = np.random.default_rng(0)
images = ["examples/kodim03.jpg", *(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(15))]
cpu = Detector(device="cpu", precision="fp32").detect_batch(images)
for precision in ("fp32", "fp16"):
    got = Detector(device="cuda", precision=precision).detect_batch(images)
    d_scores = max(abs(a.scores[c] - b.scores[c]) for a, b in zip(cpu, got) for c in a.scores)
    d_map = max(float(np.abs(a.heatmap - b.heatmap).max()) for a, b in zip(cpu, got))
    same = sum(a.label == b.label for a, b in zip(cpu, got))
    print(f"cuda {precision} vs cpu fp32: max|d score| {d_scores:.2e}, max|d heatmap| {d_map:.2e}, "
          f"labels equal {same}/{len(images)}")
EOF
echo "== throughput"
python benchmarks/gpu_check.py --peak-card "$card"
if [ -n "${OUT:-}" ]; then cp benchmarks/results/gpu_check.* benchmarks/results/gpu_parity.txt "$OUT"/; fi
