"""The package type-checks with mypy (pyproject's ``[tool.mypy]``), and mypy catches a wrong
argument type at the public API while accepting the documented inputs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api", reason="mypy is not installed: pip install -e '.[dev]'")

ROOT = Path(__file__).resolve().parents[1]

# Every line marked `# wrong` must be an [arg-type] error, and no other line may be an error (so
# the public types are neither too loose nor too strict for the documented uses).
USAGE = textwrap.dedent(
    """
    from pathlib import Path

    import numpy as np
    import torch
    from PIL import Image

    from ipad_sdk import Detector, Result, load_image
    from ipad_sdk.backends import Backend

    det = Detector("model.onnx", device="cpu", class_thresholds={"flare": 0.4})
    pixels = np.zeros((8, 8, 3), np.uint8)
    ok: list[Result] = [det.detect("photo.jpg"), det.detect(Path("photo.jpg")), det.detect(b"..."),
                        det.detect(pixels), det.detect(Image.new("RGB", (8, 8))),
                        det.detect(torch.zeros(3, 8, 8))]
    det.detect_batch(["a.jpg", pixels], batch_size=4)
    ok[0].overlay("photo.jpg").save("overlay.png")
    load_image(pixels)
    backend: Backend = det.backend
    backend.run(np.zeros((1, 3, 8, 8), np.float32))
    backend.run(torch.zeros(1, 3, 8, 8))

    det.detect(123)  # wrong
    det.detect_batch(["a.jpg"], batch_size="4")  # wrong
    Detector(model=5)  # wrong
    ok[0].overlay([1, 2, 3])  # wrong
    load_image(3.5)  # wrong
    backend.run([[0.0]])  # wrong
    """
)


def _mypy(monkeypatch: pytest.MonkeyPatch, *paths: str) -> tuple[str, int]:
    monkeypatch.chdir(ROOT)  # ipad_sdk is found in the checkout, the config in pyproject.toml
    stdout, stderr, status = api.run(["--config-file", str(ROOT / "pyproject.toml"), *paths])
    return stdout + stderr, status


def test_package_type_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    output, status = _mypy(monkeypatch, "ipad_sdk")
    assert status == 0, output
    assert "Success: no issues found" in output


def test_wrong_argument_types_at_the_public_api_are_errors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("torch", reason="the snippet passes torch tensors: needs torch's types")
    snippet = tmp_path / "usage.py"
    snippet.write_text(USAGE, encoding="utf-8")
    output, status = _mypy(monkeypatch, str(snippet))
    assert status == 1, output
    errors = [line for line in output.splitlines() if ": error:" in line]
    wrong = {i for i, line in enumerate(USAGE.splitlines(), 1) if line.endswith("# wrong")}
    assert {int(line.split(":")[1]) for line in errors} == wrong, output
    assert all(line.endswith("[arg-type]") for line in errors), output
