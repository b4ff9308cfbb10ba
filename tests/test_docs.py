"""The documentation site builds with `mkdocs build --strict`, its CLI reference is generated from
the parsers (a new subcommand appears by itself), and the README's links point at files."""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _hooks():
    spec = importlib.util.spec_from_file_location("_ipad_docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_has_every_subcommand_of_ipad():
    from ipad_sdk import cli

    hooks = _hooks()
    page = hooks.cli_reference()
    parser = hooks.capture_parser(cli.main, "ipad")
    names = [name for name, _ in hooks._subparsers(parser)]
    assert "detect" in names and "calibrate" in names
    for name in names:
        assert f"### `ipad {name}`" in page
    assert "--save-masks" in page  # the options themselves, as --help prints them
    assert "python -m ipad_sdk.integrations.triton serve|query` is `ipad serve|query`" in page
    assert "### `ipad query`" in page and "### `ipad serve`" in page and "### `ipad ray`" in page


def test_cli_reference_picks_up_a_new_subcommand_and_nested_ones():
    hooks = _hooks()

    def main(argv):
        parser = argparse.ArgumentParser(prog="x", description="a tool")
        sub = parser.add_subparsers(dest="command", required=True)
        sub.add_parser("old", help="was there")
        new = sub.add_parser("brand-new", help="added later")
        new.add_argument("--flag", help="a new option")
        nested = new.add_subparsers(dest="inner").add_parser("deeper")
        nested.add_argument("thing")
        parser.parse_args(argv)
        raise AssertionError("capture_parser must stop main before it runs")

    parser = hooks.capture_parser(main, "ipad")
    lines = hooks._parser_section(parser, 3)
    text = "\n".join(lines)
    assert "### `ipad`" in text and "#### `ipad brand-new`" in text
    assert "##### `ipad brand-new deeper`" in text and "a new option" in text
    assert "usage: ipad brand-new deeper [-h] thing" in text
    assert argparse.ArgumentParser.parse_args.__name__ == "parse_args"  # restored


def test_readme_is_short_and_its_links_resolve():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    assert targets
    for target in targets:
        if not re.match(r"^[a-z]+:", target):
            assert (ROOT / target).exists(), f"README.md links to missing {target}"


def test_every_benchmark_figure_is_shown_in_the_docs():
    pages = [*(ROOT / "docs").rglob("*.md"), *(ROOT / "benchmarks" / "results").rglob("*.md")]
    text = "\n".join(page.read_text() for page in pages)
    figures = [
        p for p in (ROOT / "benchmarks" / "results").rglob("*") if p.suffix in (".png", ".jpg")
    ]
    assert figures
    for figure in figures:
        assert f"{figure.name})" in text, f"no docs page shows {figure.relative_to(ROOT)}"


def test_mkdocs_build_strict(tmp_path):
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(module.split(".")[0]) is None:
            pytest.skip(f"{module} is not installed (it comes with the `dev` extra)")
    site = tmp_path / "site"
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    cli_page = (site / "reference" / "cli" / "index.html").read_text()
    assert "ipad detect" in cli_page and "--save-masks" in cli_page
    api_page = (site / "reference" / "api" / "index.html").read_text()
    assert "load_image" in api_page and "Raises" in api_page
    assert (site / "benchmarks" / "results" / "real_captures_default.png").is_file()
    assert (site / "model-card" / "index.html").is_file()
