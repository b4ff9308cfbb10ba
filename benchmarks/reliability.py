"""Reliability: run the bad-input corpus (benchmarks/corpus.py) and a fixed-seed batch of
byte mutations of small valid images outside pytest, and count the outcomes.

    python benchmarks/reliability.py [--out benchmarks/results] [--mutations 2000] [--seed 0]

Every input must give a clear error (an SDK error naming the input, matching the case) or a correct
result. Anything else is WRONG: an unexpected exception type, the input not named, a wrong or
missing error message, a wrong result, or more than 2 s. Mutations have no known answer: a decoded
result only has to be an HxWx3 uint8 array. Model cases are built from a fresh tiny bundle with the
repository's exporters; output cases run ``ipad detect`` into an --out folder it cannot fully write
(long names, collisions, read-only, full disk). Writes ``reliability.json`` and ``reliability.md``.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    import sys
    from pathlib import Path as _Path

    sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
import platform
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import corpus as mc
from ipad_sdk.errors import InputError
from ipad_sdk.io import describe, load_image


def run_corpus(root: Path, sources: mc.Sources) -> list[dict[str, Any]]:
    """Build and evaluate every case that can run here (CUDA cases need a GPU)."""
    import torch

    cases = [
        c
        for c in mc.all_cases()
        if (c.needs != "trt" or sources.plan)
        and (c.needs != "cuda" or torch.cuda.is_available())
        and not mc.missing_modules(c)
    ]
    mc.build_cases(cases, root, sources)
    rows = []
    for case in cases:
        outcome = mc.evaluate(case, *mc.case_input(case, root))
        rows.append(_row(case.name, case.cls, case.kind, case.expect, outcome))
    for out_case in mc.output_cases():
        outcome = mc.run_output_case(out_case, root / "_output" / out_case.name, sources.bundle)
        rows.append(_row(out_case.name, "output-side", "output", out_case.expect, outcome))
    return rows


def _row(name: str, cls: str, kind: str, expect: str, outcome: mc.Outcome) -> dict[str, Any]:
    return {
        "name": name,
        "class": cls,
        "kind": kind,
        "expect": expect,
        "status": outcome.status,
        "detail": outcome.detail[:300],
        "seconds": round(outcome.seconds, 4),
    }


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """1-4 random truncations, byte flips, insertions or deletions."""
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        if not out:
            break
        at = int(rng.integers(0, len(out)))
        op = rng.integers(0, 4)
        if op == 0:
            del out[at:]
        elif op == 1:
            out[at] ^= int(rng.integers(1, 256))
        elif op == 2:
            out[at:at] = rng.bytes(int(rng.integers(1, 17)))
        else:
            del out[at : at + int(rng.integers(1, 17))]
    return bytes(out)


def run_mutations(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` mutated seed files through ``load_image``, judged by the contract."""
    seeds = mc.fuzz_seeds()
    names = sorted(seeds)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        fmt = names[i % len(names)]
        data = mutate(seeds[fmt], rng)
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                out = load_image(data)
                status = "decoded" if _valid_array(out) else "WRONG: malformed result"
                detail = f"{out.shape}"
            except InputError as exc:
                named = str(exc).startswith(describe(data))
                status = "clear error" if named else "WRONG: input not named in the message"
                detail = str(exc)
            except Exception as exc:  # noqa: BLE001 -- an unexpected type is what we count
                status, detail = "WRONG: unexpected exception type", f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - start
        if seconds > mc.TIME_LIMIT_S and not status.startswith("WRONG"):
            status = "WRONG: slower than the limit"
        rows.append(
            {
                "index": i,
                "format": fmt,
                "status": status,
                "detail": detail[:200],
                "seconds": round(seconds, 4),
                "warnings": len(caught),
                "data_hex": data.hex() if status.startswith("WRONG") else None,
            }
        )
    return rows


def _valid_array(out: Any) -> bool:
    return (
        isinstance(out, np.ndarray)
        and out.dtype == np.uint8
        and out.ndim == 3
        and out.shape[2] == 3
        and out.flags.c_contiguous
    )


def summarise(corpus: list[dict[str, Any]], mutations: list[dict[str, Any]]) -> dict[str, Any]:
    by_class: dict[str, Counter] = defaultdict(Counter)
    for row in corpus:
        by_class[row["class"]][row["status"]] += 1
    by_format: dict[str, Counter] = defaultdict(Counter)
    for row in mutations:
        by_format[row["format"]][row["status"]] += 1
    return {
        "corpus_cases": len(corpus),
        "corpus_classes": len(by_class),
        "corpus_totals": dict(Counter(r["status"] for r in corpus)),
        "by_class": {k: dict(v) for k, v in sorted(by_class.items())},
        "mutations": len(mutations),
        "mutation_totals": dict(Counter(r["status"] for r in mutations)),
        "mutation_by_format": {k: dict(v) for k, v in sorted(by_format.items())},
        "mutations_with_pillow_warnings": sum(r["warnings"] > 0 for r in mutations),
        "slowest_mutation_s": max((r["seconds"] for r in mutations), default=0.0),
    }


def write_markdown(path: Path, result: dict[str, Any]) -> None:
    s = result["summary"]
    wrong = lambda counts: sum(v for k, v in counts.items() if k.startswith("WRONG"))  # noqa: E731
    lines = [
        "# Reliability: bad-input corpus and byte mutations",
        "",
        f"Generated by `benchmarks/reliability.py` on {result['machine']} "
        f"({result['seconds']:.0f} s). Corpus: {s['corpus_cases']} cases in "
        f"{s['corpus_classes']} classes; {s['mutations']} fixed-seed mutations "
        f"(seed {result['seed']}).",
        "",
        "| class | cases | clear error | correct result | WRONG |",
        "|---|---:|---:|---:|---:|",
    ]
    for cls, counts in s["by_class"].items():
        lines.append(
            f"| {cls} | {sum(counts.values())} | {counts.get('clear error', 0)} | "
            f"{counts.get('correct result', 0)} | {wrong(counts)} |"
        )
    t = s["corpus_totals"]
    lines.append(
        f"| **total** | **{s['corpus_cases']}** | **{t.get('clear error', 0)}** | "
        f"**{t.get('correct result', 0)}** | **{wrong(t)}** |"
    )
    lines += ["", "## WRONG corpus cases", ""]
    bad = [r for r in result["corpus"] if r["status"].startswith("WRONG")]
    lines += [f"- `{r['name']}` ({r['class']}): {r['status']} - {r['detail']}" for r in bad]
    lines += ["- none"] if not bad else []
    m = s["mutation_totals"]
    lines += [
        "",
        "## Mutations",
        "",
        "| format | mutations | clear error | decoded (HxWx3 uint8) | WRONG |",
        "|---|---:|---:|---:|---:|",
    ]
    for fmt, counts in s["mutation_by_format"].items():
        lines.append(
            f"| {fmt} | {sum(counts.values())} | {counts.get('clear error', 0)} | "
            f"{counts.get('decoded', 0)} | {wrong(counts)} |"
        )
    lines.append(
        f"| **total** | **{s['mutations']}** | **{m.get('clear error', 0)}** | "
        f"**{m.get('decoded', 0)}** | **{wrong(m)}** |"
    )
    lines += [
        "",
        f"Slowest mutation: {s['slowest_mutation_s']:.3f} s. Calls on which Pillow "
        f"emitted a warning (e.g. corrupt TIFF/EXIF tags): "
        f"{s['mutations_with_pillow_warnings']}.",
        "",
    ]
    bad = [r for r in result["mutations"] if r["status"].startswith("WRONG")]
    if bad:
        lines += ["WRONG mutations (input bytes in reliability.json):", ""]
        lines += [f"- #{r['index']} ({r['format']}): {r['status']} - {r['detail']}" for r in bad]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--mutations", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ipad-corpus-") as tmp:
        sources = mc.make_sources(Path(tmp) / "sources")
        corpus = run_corpus(Path(tmp) / "corpus", sources)
    mutations = run_mutations(args.mutations, args.seed)
    result = {
        "machine": f"{platform.machine()} {platform.python_implementation()} "
        f"{platform.python_version()}",
        "seed": args.seed,
        "seconds": round(time.perf_counter() - start, 1),
        "summary": summarise(corpus, mutations),
        "corpus": corpus,
        "mutations": [r for r in mutations if r["status"].startswith("WRONG")],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "reliability.json").write_text(json.dumps(result, indent=1) + "\n")
    write_markdown(args.out / "reliability.md", result)
    s = result["summary"]
    print(f"corpus {s['corpus_cases']} cases: {s['corpus_totals']}")
    print(f"mutations {s['mutations']}: {s['mutation_totals']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
