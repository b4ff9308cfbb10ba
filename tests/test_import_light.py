"""`import ipad_sdk` and the torch-free parts work with numpy + pillow only."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

HEAVY = [
    "torch", "torchvision", "open_clip", "safetensors", "onnx", "onnxruntime", "tensorrt",
    "tensorrt_rtx", "cuda", "scipy", "matplotlib", "tqdm", "skimage", "pillow_heif", "rawpy", "av",
]  # fmt: skip

SCRIPT = textwrap.dedent(
    """
    import importlib.abc, json, sys
    import numpy as np

    HEAVY = set({heavy!r})

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in HEAVY:
                raise ImportError(f"blocked heavy import: {{name}}")
            return None

    sys.meta_path.insert(0, Block())

    import ipad_sdk
    from ipad_sdk import Detector, BackendUnavailable, Result, load_image
    from ipad_sdk.metadata import read_bundle_config
    from ipad_sdk.cli import main

    rgb = load_image(np.zeros((5, 7), np.uint16))
    cfg = read_bundle_config({bundle!r})
    res = Result.from_probs(np.array([0.1, 0.2, 0.3, 0.4]), np.full((4, 8, 8), 0.25), cfg, (5, 7))
    try:
        Detector({bundle!r}, device="cpu")
        backend_error = None
    except BackendUnavailable as exc:
        backend_error = str(exc)
    code = main(["info", {bundle!r}])
    print(json.dumps({{
        "shape": rgb.shape, "backbone": cfg.backbone, "label": res.label,
        "mask": int(res.mask.sum()),
        "backend_error": backend_error, "info_code": code,
        "heavy_loaded": sorted(m for m in sys.modules if m.split(".")[0] in HEAVY),
    }}))
    """
)


def test_import_and_light_features_without_heavy_dependencies(tiny_bundle: Path):
    script = SCRIPT.format(heavy=HEAVY, bundle=str(tiny_bundle))
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["heavy_loaded"] == []
    assert report["shape"] == [5, 7, 3]
    assert report["backbone"] == "IPAD-Tiny-ViT-16"
    assert report["label"] == "moire" and report["mask"] == 35  # 0.75 artifact prob everywhere
    assert "pip install 'ipad-sdk[torch]'" in report["backend_error"]
    assert report["info_code"] == 0
