"""Imports point one way: the core SDK <- backends and model <- the pipeline (detector, runner)
<- tools and integrations (``ipad`` subcommands) <- train/ and benchmarks/ <- tests/.

Every import statement of the source tree, the lazy ones inside functions included, is read with
``ast`` (relative imports resolved), so a wrong-way import fails here naming the file, the line and
the module it imports.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ("ipad_sdk", "train", "benchmarks", "export")

#: Top-level folder -> the top-level folders it must not import.
FORBIDDEN_TOP = {
    "ipad_sdk": {"train", "benchmarks", "tests", "export"},
    "train": {"benchmarks", "tests", "export"},
    "benchmarks": {"tests", "export"},
    "export": {"train", "benchmarks", "tests"},  # the scripts there only call ipad_sdk.export
}
#: Inside ipad_sdk: modules below the pipeline. Other ipad_sdk modules (detector, runner, the batch
#: shim, calibrate, the package itself, which re-exports Detector) are the pipeline; tools are
#: above it.
CORE = {
    "_version", "errors", "fileio", "metadata", "io", "decoders", "colour", "preprocess",
    "device_preprocess", "result", "regions", "thresholds", "tiling", "visualize", "video", "yuv",
    "discover", "arrays", "outputs",
}  # fmt: skip
BACKENDS_AND_MODEL = ("ipad_sdk.backends", "ipad_sdk.model")
TOOLS = ("ipad_sdk.cli", "ipad_sdk.export", "ipad_sdk.integrations")
CORE_LEVEL, MODEL_LEVEL, PIPELINE_LEVEL, TOOLS_LEVEL = range(4)


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def sdk_level(module: str) -> int:
    """The layer of an ``ipad_sdk`` module (see the module docstring)."""
    if _within(module, TOOLS):
        return TOOLS_LEVEL
    if _within(module, BACKENDS_AND_MODEL):
        return MODEL_LEVEL
    parts = module.split(".")
    return CORE_LEVEL if len(parts) == 2 and parts[1] in CORE else PIPELINE_LEVEL


def module_name(root: Path, path: Path) -> str:
    """``ipad_sdk/export/onnx.py`` -> ``ipad_sdk.export.onnx`` (a package is its ``__init__``)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(root: Path, path: Path) -> Iterator[tuple[int, str]]:
    """``(line, absolute module)`` of every import in ``path``; ``from X import a`` names ``X.a``
    where that is a module or package of the tree, else ``X``."""
    name = module_name(root, path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                as_path = root.joinpath(*sub.split("."))
                is_module = as_path.with_suffix(".py").is_file() or as_path.is_dir()
                yield node.lineno, sub if is_module else source


def violations(root: Path) -> list[str]:
    """Every wrong-way import below ``root``, as ``file:line imports module (why)``."""
    found = []
    for top in CHECKED:
        for path in sorted(root.joinpath(top).rglob("*.py")):
            importer = module_name(root, path)
            for line, target in imports(root, path):
                why = _why(importer, target)
                if why:
                    found.append(f"{path.relative_to(root)}:{line} imports {target} ({why})")
    return found


def _why(importer: str, target: str) -> str:
    """Why ``importer`` must not import ``target`` (empty when it may)."""
    top, target_top = importer.split(".")[0], target.split(".")[0]
    if target_top in FORBIDDEN_TOP.get(top, set()):
        return f"{top} must not import {target_top}"
    if top != "ipad_sdk" or target_top != "ipad_sdk":
        return ""
    if sdk_level(target) > sdk_level(importer):
        return "an ipad_sdk module imports a layer above its own"
    if _within(importer, ("ipad_sdk.model",)) and _within(target, ("ipad_sdk.backends",)):
        return "the model must not import a backend"
    backend = _within(importer, ("ipad_sdk.backends",)) and importer != "ipad_sdk.backends"
    if (
        backend
        and _within(target, ("ipad_sdk.backends",))
        and target not in (importer, "ipad_sdk.backends")
    ):
        return "backends must not import each other"
    return ""


def test_imports_point_one_way():
    assert violations(ROOT) == []


def test_the_package_and_its_scripts_leave_sys_path_alone():
    """ipad_sdk and the export/ scripts import through the installed package only."""
    edits = []
    for path in sorted(
        [*ROOT.joinpath("ipad_sdk").rglob("*.py"), *ROOT.joinpath("export").glob("*.py")]
    ):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "path"
                and (isinstance(node.value, ast.Name) and node.value.id == "sys")
            ):
                edits.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert edits == []


def test_the_layers_name_existing_modules():
    """CORE and the layer prefixes name real modules (a rename must update this test)."""
    sdk = ROOT / "ipad_sdk"
    missing = [m for m in CORE if not (sdk / f"{m}.py").is_file()]
    missing += [p for p in BACKENDS_AND_MODEL + TOOLS if not _module_exists(ROOT, p)]
    assert missing == []


def _module_exists(root: Path, module: str) -> bool:
    path = root.joinpath(*module.split("."))
    return path.is_dir() or path.with_suffix(".py").is_file()


@pytest.mark.parametrize(
    ("file", "source", "expected"),
    [
        ("ipad_sdk/io.py", "import train.dataset\n", "ipad_sdk must not import train"),
        ("train/model_card.py", "from benchmarks.accuracy import TABLE1\n",
         "train must not import benchmarks"),
        ("benchmarks/reliability.py", "from tests.corpus import make_corpus\n",
         "benchmarks must not import tests"),
        ("ipad_sdk/metadata.py", "from .detector import Detector\n", "a layer above its own"),
        ("ipad_sdk/backends/onnx_backend.py", "def f():\n    from ..export.onnx import run\n",
         "a layer above its own"),
        ("ipad_sdk/backends/onnx_backend.py", "from .torch_backend import TorchBackend\n",
         "backends must not import each other"),
        ("ipad_sdk/model/network.py", "from ipad_sdk.backends import onnx_backend\n",
         "the model must not import a backend"),
        ("ipad_sdk/batch.py", "from . import integrations\n", "a layer above its own"),
    ],
)  # fmt: skip
def test_a_wrong_way_import_is_found_and_named(tmp_path, file, source, expected):
    for package in ("ipad_sdk", "ipad_sdk/backends", "ipad_sdk/model", "ipad_sdk/export",
                    "ipad_sdk/integrations", "train", "benchmarks", "tests/corpus"):  # fmt: skip
        (tmp_path / package).mkdir(parents=True, exist_ok=True)
        (tmp_path / package / "__init__.py").write_text("")
    others = ["ipad_sdk/detector.py", "ipad_sdk/export/onnx.py", "train/dataset.py"]
    backends = ["ipad_sdk/backends/torch_backend.py", "ipad_sdk/backends/onnx_backend.py"]
    for module in others + backends:
        (tmp_path / module).write_text("")
    (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / file).write_text("import numpy\n" + source)
    found = violations(tmp_path)
    assert len(found) == 1, found
    assert found[0].startswith(f"{file}:") and expected in found[0]


def test_right_way_imports_pass(tmp_path):
    (tmp_path / "ipad_sdk" / "export").mkdir(parents=True)
    (tmp_path / "ipad_sdk" / "backends").mkdir()
    (tmp_path / "train").mkdir()
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "ipad_sdk" / "export" / "onnx.py").write_text(
        "from ..model import load_bundle\nfrom ..detector import Detector\nfrom .. import errors\n"
    )
    (tmp_path / "ipad_sdk" / "backends" / "__init__.py").write_text(
        "def f():\n    from .onnx_backend import OnnxBackend\n"
    )
    (tmp_path / "train" / "recipe.py").write_text("from ipad_sdk.export import onnx\n")
    (tmp_path / "benchmarks" / "accuracy.py").write_text("from train.evaluation import TABLE1\n")
    assert violations(tmp_path) == []
