"""benchmarks/real_captures.py on a labelled folder made here: the figures equal the ones computed
independently from the per-image scores and labels, and the report files are written."""

from __future__ import annotations

import csv
import json
import warnings

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")
from sklearn.metrics import roc_auc_score  # noqa: E402

from benchmarks import real_captures as rc  # noqa: E402


@pytest.fixture
def labelled(tmp_path):
    rng = np.random.default_rng(0)
    rows = [("clean", 6), ("flare", 3), ("moire", 3), ("ghosting", 2)]
    with open(tmp_path / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "note"])
        for label, count in rows:
            (tmp_path / label).mkdir()
            for i in range(count):
                size = (40 + 8 * i, 56)
                Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(
                    tmp_path / label / f"{i}.png"
                )
                writer.writerow([f"{label}/{i}.png", label, ""])
    return tmp_path


def test_figures_match_an_independent_computation(labelled, tiny_bundle, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = rc.evaluate(str(tiny_bundle), labelled)
    per_image = result["per_image"]
    labels = np.array([r["label"] for r in per_image])
    scores = np.array([r["artifact_score"] for r in per_image])
    predicted = np.array([r["predicted"] for r in per_image])
    assert result["counts"] == {"clean": 6, "flare": 3, "moire": 3, "ghosting": 2}
    clean = labels == "clean"
    assert result["artifact_vs_clean"]["model_auroc"] == pytest.approx(
        roc_auc_score(~clean, scores)
    )
    assert result["clean_flagged"] == pytest.approx(np.mean(predicted[clean] != "clean"))
    for cls in ("flare", "moire", "ghosting"):
        keep = clean | (labels == cls)
        fig = result["per_class"][cls]
        assert fig["model_auroc"] == pytest.approx(roc_auc_score(labels[keep] == cls, scores[keep]))
        own = np.array([r["scores"][cls] for r in per_image])
        expected = roc_auc_score(labels[keep] == cls, own[keep])
        assert fig["class_prob_auroc"] == pytest.approx(expected)
        assert fig["caught"] == pytest.approx(np.mean(predicted[labels == cls] == cls))
        assert 0.5 <= fig["best_single_cue"]["auroc"] <= 1.0  # either orientation: never below
        assert 0.0 <= fig["global_classifier_auroc"] <= 1.0


def test_best_single_cue_takes_either_orientation():
    positive = np.array([1, 1, 0, 0, 0], bool)
    cues = {"up": np.array([5.0, 4, 1, 2, 3]), "down": np.array([0.0, 1, 5, 4, 3])}
    name, value = rc.best_single_cue(cues, positive)
    assert value == 1.0 and name in ("up", "down")
    name, value = rc.best_single_cue({"down": cues["down"]}, positive)
    assert (name, value) == ("down", 1.0)


def test_script_writes_json_markdown_and_plot(labelled, tiny_bundle, tmp_path, capsys):
    out = tmp_path / "results"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert rc.main(["--model", str(tiny_bundle), "--data", str(labelled), "--name", "t",
                        "--out", str(out)]) == 0  # fmt: skip
    data = json.loads((out / "real_captures_t.json").read_text())
    assert data["images"] == 14
    markdown = (out / "real_captures_t.md").read_text()
    assert "| any artifact vs clean | 8 vs 6 |" in markdown
    assert (out / "real_captures_t.png").stat().st_size > 1000
    assert "flare vs clean" in capsys.readouterr().out


def test_missing_labels_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit):
        rc.main(["--data", str(tmp_path)])
