"""MkDocs hooks: pages generated at build time, so the site cannot drift from the repository.

- ``reference/cli.md``: the help of every command-line program, formatted from its own argparse
  parser (each parser and, recursively, each subparser). The parser is captured by calling the
  program's ``main(["--help"])`` with ``ArgumentParser.parse_args`` intercepted, so a subcommand
  added to ``ipad`` later appears without touching the docs.
- ``benchmarks/results/**``: the measured result files and plots of ``benchmarks/results/``,
  served from where they are (nothing copied into ``docs/``).
- ``model-card.md``, ``training/train-readme.md``, ``deployment/cpp-readme.md``: the model card
  and the READMEs of ``train/`` and ``cpp_example/``, as they are in the repository.

Relative links in those repository files are rewritten to the matching page when it is part of the
site, otherwise to plain text naming the repository path.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import io
import os
import posixpath
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (what it is, how it is run, its module) of each documented program; `ipad` comes first.
# (`python -m ipad_sdk.integrations.ray` and `... .triton serve|query` are `ipad ray`, `ipad serve`
# and `ipad query` by construction: the same option definitions, integrations/commands.py.)
PROGRAMS = [("the ipad command", "ipad", "ipad_sdk.cli")]
# scripts run from a checkout: every export/*.py with a main() (moved ones simply drop out)
SCRIPT_GLOBS = ["export/*.py"]

# repository files served as pages: repo path -> page
REPO_PAGES = {
    "ipad_sdk/weights/MODEL_CARD.md": "model-card.md",
    "train/README.md": "training/train-readme.md",
    "cpp_example/README.md": "deployment/cpp-readme.md",
}
RESULTS = "benchmarks/results"


class _Captured(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__(parser.prog)
        self.parser = parser


def capture_parser(main, prog: str) -> argparse.ArgumentParser:
    """The top-level parser that ``main`` builds, captured when it starts parsing."""

    def intercept(self, *args, **kwargs):
        raise _Captured(self)

    saved = argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args
    argparse.ArgumentParser.parse_args = intercept  # type: ignore[method-assign]
    argparse.ArgumentParser.parse_known_args = intercept  # type: ignore[method-assign]
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            main(["--help"])
    except _Captured as captured:
        captured.parser.prog = prog
        return captured.parser
    finally:
        argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args = saved
    raise RuntimeError(f"{prog}: main() returned without parsing its arguments")


def _subparsers(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    """The subcommands of ``parser`` by name, each named ``<parser.prog> <name>`` (argparse names
    them after the running program's ``sys.argv[0]``)."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:  # aliases share one parser
                    seen.add(id(sub))
                    sub.prog = f"{parser.prog} {name}"
                    out.append((name, sub))
    return out


def _help(parser: argparse.ArgumentParser) -> str:
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "80"  # argparse wraps to the terminal width: fix it to the page's
    try:
        return parser.format_help().rstrip()
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def _parser_section(parser: argparse.ArgumentParser, level: int) -> list[str]:
    """Markdown of ``parser``'s help under a heading, then of each subcommand's one level down."""
    lines = [f"{'#' * level} `{parser.prog}`", "", "```text", _help(parser), "```", ""]
    for _, sub in _subparsers(parser):
        lines += _parser_section(sub, min(level + 1, 6))
    return lines


def _load_script(path: Path):
    name = f"_ipad_docs_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def cli_reference() -> str:
    """Markdown of every program's help, formatted from its parsers."""
    lines = [
        "# CLI reference",
        "",
        "Generated at build time from the programs' own `argparse` parsers (`docs/hooks.py`):",
        "every command and subcommand, as `--help` prints it. How the commands behave: "
        "[Command line](../guide/cli.md). `python -m ipad_sdk.integrations.ray` is `ipad ray`, "
        "and `python -m ipad_sdk.integrations.triton serve|query` is `ipad serve|query`: the "
        "same options, defined once.",
        "",
    ]
    for _, prog, module_name in PROGRAMS:
        parser = capture_parser(importlib.import_module(module_name).main, prog)
        lines += _parser_section(parser, 2)
    scripts = sorted(p for pattern in SCRIPT_GLOBS for p in ROOT.glob(pattern))
    scripts = [p for p in scripts if "def main(" in p.read_text()]
    if scripts:
        lines += ["## Scripts run from a checkout", ""]
        for path in scripts:
            rel = path.relative_to(ROOT).as_posix()
            parser = capture_parser(_load_script(path).main, f"python {rel}")
            lines += _parser_section(parser, 3)
    return "\n".join(lines) + "\n"


_LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s#]+)(#[^)\s]*)?\)")


def _rewrite_links(markdown: str, repo_path: str, page: str, pages: dict[str, str]) -> str:
    """Relative links of a repository file, made to work from its page in the site."""

    def fix(match: re.Match) -> str:
        prefix, target, anchor = match.group(1), match.group(2), match.group(3) or ""
        if re.match(r"^[a-z]+:", target) or target.startswith("/"):
            return match.group(0)
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(repo_path), target))
        if resolved in pages:
            rel = posixpath.relpath(pages[resolved], posixpath.dirname(page) or ".")
            return f"{prefix}{rel}{anchor})"
        if prefix.startswith("!"):
            raise ValueError(f"{repo_path}: image {target} is not part of the site")
        return f"{prefix[1:-2]} (`{resolved}`)"

    return _LINK.sub(fix, markdown)


def _site_pages() -> dict[str, str]:
    """Repository path -> site path of every repository file the site serves."""
    pages = dict(REPO_PAGES)
    for path in (ROOT / RESULTS).rglob("*"):
        if path.is_file():
            rel = path.relative_to(ROOT).as_posix()
            pages[rel] = rel
    return pages


def on_files(files, config):
    """Add the generated pages and the repository files the site serves (an MkDocs hook)."""
    from mkdocs.structure.files import File  # imported here: the generators work without mkdocs

    pages = _site_pages()
    for repo_path, page in pages.items():
        source = ROOT / repo_path
        if repo_path.endswith(".md"):
            text = _rewrite_links(source.read_text(), repo_path, page, pages)
            files.append(File.generated(config, page, content=text))
        elif source.suffix.lower() in (".png", ".jpg", ".jpeg", ".svg"):
            files.append(File.generated(config, page, abs_src_path=str(source)))
    files.append(File.generated(config, "reference/cli.md", content=cli_reference()))
    return files
