"""train/recipe.py wires fetch -> data -> training (resumed) -> export, stops at a failed step, and
passes make_dataset arguments its parser accepts. The steps themselves are tested elsewhere."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from train import recipe  # noqa: E402


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"data": str(tmp_path / "data"), "out": str(tmp_path / "run")}))
    return path


def _record(monkeypatch, fetch_rc=0):
    import ipad_sdk.export.onnx as export_onnx

    calls = []

    class FakeTrainer:
        def __init__(self, cfg):
            calls.append(("train-init", cfg.data))

        def run(self, resume=False):
            calls.append(("train", resume))

    monkeypatch.setattr(
        recipe.fetch_photos, "main", lambda a: calls.append(("fetch", a)) or fetch_rc
    )
    monkeypatch.setattr(recipe.make_dataset, "main", lambda a: calls.append(("data", a)) or 0)
    monkeypatch.setattr(recipe.trainer, "Trainer", FakeTrainer)
    monkeypatch.setattr(export_onnx, "main", lambda a: calls.append(("export", a)) or 0)
    return calls


def test_steps_run_in_order_and_training_resumes(monkeypatch, config, tmp_path, capsys):
    calls = _record(monkeypatch)
    assert recipe.main(["--config", str(config), "--clean", str(tmp_path / "nowhere"),
                        "--photos", str(tmp_path / "photos")]) == 0  # fmt: skip
    assert [c[0] for c in calls] == ["fetch", "data", "train-init", "train", "export"]  # one config
    data_argv = calls[1][1]
    assert data_argv[:2] == [
        "--clean",
        str(tmp_path / "photos"),
    ]  # a missing extra folder is left out
    assert data_argv.count("--clean") == 1
    assert ("train", True) in calls
    assert calls[4][1][0] == str(tmp_path / "run" / "model.safetensors")
    assert "seconds" in capsys.readouterr().out


def test_a_failed_fetch_stops_the_recipe(monkeypatch, config):
    calls = _record(monkeypatch, fetch_rc=1)
    assert recipe.main(["--config", str(config)]) == 1
    assert [c[0] for c in calls] == ["fetch"]


def test_dataset_arguments_are_accepted_by_make_dataset(monkeypatch, tmp_path):
    argv = recipe.dataset_argv(["a", "b"], str(tmp_path / "d"), 2, "patterns")
    seen = {}

    def stop_at_photo_search(cleans):
        seen["clean"] = cleans
        raise SystemExit("stop")

    monkeypatch.setattr(recipe.make_dataset, "find_all_photos", stop_at_photo_search)
    with pytest.raises(SystemExit, match="stop"):  # parsed and validated up to the photo search
        recipe.make_dataset.main(argv[:-2])
    assert seen["clean"] == ("a", "b")
    assert argv[argv.index("--size") + 1] == str(recipe.DATASET["size"])


def test_default_phases_run_in_order_each_on_its_dataset(monkeypatch, tmp_path):
    calls = _record(monkeypatch)
    assert recipe.main(["--clean", str(tmp_path / "nowhere"),
                        "--photos", str(tmp_path / "photos")]) == 0  # fmt: skip
    assert [c[0] for c in calls] == ["fetch"] + ["data", "train-init", "train", "export"] * 3
    first, second, third = calls[1][1], calls[5][1], calls[9][1]
    assert "--night" not in first and "--screens" not in first + second
    assert second[second.index("--night") + 1] == str(recipe.NIGHT_DATASET["night"])
    assert third[third.index("--night") + 1] == str(recipe.NIGHT_DATASET["night"])
    assert third[third.index("--screens") + 1] == str(recipe.SCREENS_DATASET["screens"])
    assert third[third.index("--wide-bands") + 1] == str(recipe.BANDS_DATASET["wide_bands"])
    assert "--wide-bands" not in first + second
    # the same seed in every phase: each photo keeps its split, so no phase trains on a test photo
    assert {first[first.index("--seed") + 1], second[second.index("--seed") + 1],
            third[third.index("--seed") + 1]} == {str(recipe.DATASET["seed"])}  # fmt: skip
    cfgs = [recipe.trainer.TrainConfig.load(recipe.ROOT / path) for path, _ in recipe.PHASES]
    for before, after in zip(cfgs, cfgs[1:], strict=False):
        assert after.init == f"{before.out}/model.safetensors"  # a phase starts from the last
    assert [calls[2 + 4 * i][1] for i in range(3)] == [c.data for c in cfgs]


def test_an_experiment_config_gets_the_dataset_it_trains_on(monkeypatch, tmp_path):
    """``--config train/configs/hires-cpu.json`` (the grown-input experiment) rebuilds, or finds,
    the third phase's data, not the first phase's settings under the third phase's folder."""
    calls = _record(monkeypatch)
    config = str(recipe.ROOT / "train/configs/hires-cpu.json")
    assert recipe.main(["--config", config, "--clean", str(tmp_path / "nowhere"),
                        "--photos", str(tmp_path / "photos"),
                        "--flare-patterns", str(tmp_path)]) == 0  # fmt: skip
    want = recipe.dataset_argv([str(tmp_path / "photos")], "data/ipad-native-1024-screens", 2,
                               str(tmp_path), recipe.SCREENS_DATASET)  # fmt: skip
    assert calls[1][1] == want and calls[2][1] == "data/ipad-native-1024-screens"


def test_the_third_phase_is_the_screens_experiment_plus_wide_moire_bands(monkeypatch, tmp_path):
    """The third phase (``train/configs/default-cpu-bands.json``) trains exactly as the config it
    replaced, now an experiment (same start, stages, epochs, seed), on that config's dataset
    settings plus ``--wide-bands 0.5``, in its own folders; make_dataset's parser accepts them."""
    from train.train import TrainConfig

    parse_data_argv = recipe.make_dataset.main  # before _record replaces it
    calls = _record(monkeypatch)
    bands = recipe.ROOT / "train/configs/default-cpu-bands.json"
    screens = recipe.ROOT / "train/configs/default-cpu-screens.json"
    assert recipe.PHASES[-1] == ("train/configs/default-cpu-bands.json", recipe.BANDS_DATASET)
    assert ("train/configs/default-cpu-screens.json", recipe.SCREENS_DATASET) in recipe.EXPERIMENTS
    for config in (bands, screens):
        assert recipe.main(["--config", str(config), "--clean", str(tmp_path / "nowhere"),
                            "--photos", str(tmp_path / "photos"),
                            "--flare-patterns", str(tmp_path)]) == 0  # fmt: skip
    with_bands, without = calls[1][1], calls[6][1]
    assert without == recipe.dataset_argv([str(tmp_path / "photos")],
                                          "data/ipad-native-1024-screens", 2, str(tmp_path),
                                          recipe.SCREENS_DATASET)  # fmt: skip
    out = without.index("--out") + 1
    want = without[:out] + ["data/ipad-native-1024-bands"] + without[out + 1 : -2]
    assert with_bands == want + ["--wide-bands", "0.5"] + without[-2:]
    third, before = TrainConfig.load(bands), TrainConfig.load(screens)
    differs = {k for k, v in vars(before).items() if vars(third)[k] != v}
    assert differs == {"description", "data", "out"}

    def stop_at_photo_search(cleans):
        raise SystemExit("stop")

    monkeypatch.setattr(recipe.make_dataset, "find_all_photos", stop_at_photo_search)
    with pytest.raises(SystemExit, match="stop"):  # parsed and validated up to the photo search
        parse_data_argv(with_bands)


@pytest.mark.parametrize("path,dataset", recipe.PHASES + recipe.EXPERIMENTS)
def test_every_config_of_the_recipe_gets_its_own_dataset_settings(
    monkeypatch, tmp_path, path, dataset
):
    """Each phase and experiment config, run alone, builds (or finds) the data its ``data`` folder
    names with the settings listed beside it, and each data folder has one set of settings."""
    calls = _record(monkeypatch)
    assert recipe.main(["--config", str(recipe.ROOT / path), "--clean", str(tmp_path / "none"),
                        "--photos", str(tmp_path / "photos"),
                        "--flare-patterns", str(tmp_path)]) == 0  # fmt: skip
    cfg = recipe.trainer.TrainConfig.load(recipe.ROOT / path)
    want = recipe.dataset_argv([str(tmp_path / "photos")], cfg.data, 2, str(tmp_path), dataset)
    assert calls[1][1] == want and calls[2][1] == cfg.data
    folders: dict[str, dict] = {}
    for other, settings in recipe.PHASES + recipe.EXPERIMENTS:
        data = recipe.trainer.TrainConfig.load(recipe.ROOT / other).data
        assert folders.setdefault(data, settings) == settings, (other, data)


def test_the_gpu_phases_are_the_cpu_phases_on_cuda(monkeypatch, tmp_path):
    """``--gpu`` trains the same recipe: every GPU phase config equals its CPU phase's but for the
    device settings and its own run folders (chained like the CPU phases), on the same data."""
    cpu = [json.loads((recipe.ROOT / path).read_text()) for path, _ in recipe.PHASES]
    gpu = [json.loads((recipe.ROOT / path).read_text()) for path, _ in recipe.GPU_PHASES]
    assert [d for _, d in recipe.GPU_PHASES] == [d for _, d in recipe.PHASES]
    own = {"description", "out", "init", "device", "workers", "amp"}
    for c, g in zip(cpu, gpu, strict=True):
        assert {k: v for k, v in g.items() if k not in own} == {
            k: v for k, v in c.items() if k not in own
        }
        assert (g["device"], g["amp"]) == ("cuda", True) and g["out"] != c["out"]
    for before, after in zip(gpu, gpu[1:], strict=False):
        assert after["init"] == f"{before['out']}/model.safetensors"
    calls = _record(monkeypatch)
    assert recipe.main(["--gpu", "--clean", str(tmp_path / "nowhere"),
                        "--photos", str(tmp_path / "photos")]) == 0  # fmt: skip
    assert [calls[2 + 4 * i][1] for i in range(3)] == [g["data"] for g in gpu]
    assert [calls[4 + 4 * i][1][0] for i in range(3)] == [
        f"{g['out']}/model.safetensors" for g in gpu
    ]
