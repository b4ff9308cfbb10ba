"""train/soup.py: the soup holds the element-wise mean of its runs' tensors (checked tensor by
tensor against torch's own mean of the inputs), unit anchors, and refuses runs of other models."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from ipad_sdk.model import TINY_BACKBONE, build_ipad_clip  # noqa: E402
from train.soup import average  # noqa: E402


def _model(seed: int, **config):
    return build_ipad_clip(TINY_BACKBONE, seed=seed, description=f"seed {seed}", **config)


def test_the_soup_is_the_mean_of_every_floating_tensor():
    models = [_model(seed) for seed in (0, 1, 2)]
    for seed, model in enumerate(models):
        model.config = model.config.replace(image_threshold=0.1 * (seed + 1))
    states = [{k: v.clone() for k, v in m.state_dict().items()} for m in models]
    soup = average(models).state_dict()
    varied = 0
    for key, value in soup.items():
        stacked = torch.stack([s[key].double() for s in states])
        if key == "anchors":
            mean = torch.nn.functional.normalize(stacked.mean(0), dim=-1)
            assert torch.allclose(value.norm(dim=-1), torch.ones(len(value)), atol=1e-6)
        elif value.is_floating_point():
            mean = stacked.mean(0)
        else:  # counters (BatchNorm's num_batches_tracked) come from the first run
            mean = states[0][key].double()
        assert torch.allclose(value.double(), mean, atol=1e-6), key
        varied += bool((stacked[0] != stacked[1]).any())
    assert varied > 10  # the seeds gave different weights, so the mean was really taken


def test_runs_of_different_models_are_refused():
    with pytest.raises(ValueError, match="differ in"):
        average([_model(0), _model(1, tau=0.05)])
    with pytest.raises(ValueError, match="at least two"):
        average([_model(0)])
