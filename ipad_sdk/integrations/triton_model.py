"""Triton Python-backend model ``<name>_detect``: encoded images in, ``ipad detect`` records out.

``export/triton_repo.py`` copies this file to ``REPO/<name>_detect/1/model.py``; it runs inside
Triton only (``triton_python_backend_utils`` exists there) and needs ``ipad-sdk`` (numpy + pillow)
in Triton's Python environment. Interface: :mod:`ipad_sdk.integrations.triton`.

Business logic scripting (BLS): a :class:`~ipad_sdk.Detector` wraps the network model
(``parameters.core_model``: ONNX Runtime or TensorRT, same repository) as its backend
(:class:`~ipad_sdk.integrations.triton.NetworkBackend`, at most ``parameters.core_max_batch``
images a call; optional ``parameters.tiling``, default off). Each ``execute`` runs the images of
all its requests through that Detector's ``stream``, the SDK's one pipeline: decode, preprocess,
tile, network, ``Result``. An image that cannot be decoded is an error record naming it (its
request's ``sources`` parameter), never sent to the network; a failing network call fails the
requests of that call.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from ipad_sdk.errors import IpadError
from ipad_sdk.integrations.triton import (
    INPUT,
    METADATA_FILE,
    detect_requests,
    network_detector,
    repository_backend,
)
from ipad_sdk.metadata import INPUT_NAME, OUTPUT_NAMES


class TritonPythonModel:
    """The ``<name>_detect`` model (see the module docstring)."""

    def initialize(self, args: dict[str, str]) -> None:
        params = json.loads(args["model_config"]).get("parameters", {})
        self.core = params["core_model"]["string_value"]
        max_batch = int(params["core_max_batch"]["string_value"])
        tiling = params.get("tiling", {}).get("string_value", "off")
        folder = Path(args["model_repository"], args["model_version"])
        backend = repository_backend(folder / METADATA_FILE, self._network, max_batch)
        self.detector = network_detector(backend, max_batch, tiling)

    def execute(self, requests: list[Any]) -> list[Any]:
        try:
            columns = detect_requests(self.detector, [
                (pb_utils.get_input_tensor_by_name(r, INPUT).as_numpy(),
                 json.loads(r.parameters() or "{}")) for r in requests
            ])  # fmt: skip
        except IpadError as exc:
            error = pb_utils.TritonError(f"{self.core}: {exc}")
            return [pb_utils.InferenceResponse(error=error) for _ in requests]
        return [
            pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor(name, column) for name, column in out.items()]
            )
            for out in columns
        ]

    def _network(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        request = pb_utils.InferenceRequest(
            model_name=self.core, requested_output_names=list(OUTPUT_NAMES),
            inputs=[pb_utils.Tensor(INPUT_NAME, batch)],
        )  # fmt: skip
        response = request.exec()
        if response.has_error():
            raise IpadError(response.error().message())
        class_probs, pixel_probs = (
            pb_utils.get_output_tensor_by_name(response, name).as_numpy() for name in OUTPUT_NAMES
        )
        return class_probs, pixel_probs

    def finalize(self) -> None:
        self.detector.close()
