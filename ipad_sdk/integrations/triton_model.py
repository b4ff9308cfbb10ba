"""Triton Python-backend model ``<name>_detect``: encoded images in, ``ipad detect`` records out.

``export/triton_repo.py`` copies this file to ``REPO/<name>_detect/1/model.py``; it runs inside
Triton only (``triton_python_backend_utils`` exists there) and needs ``ipad-sdk`` (numpy + pillow)
in Triton's Python environment. Interface: :mod:`ipad_sdk.integrations.triton`.

Business logic scripting (BLS): each ``execute`` gathers the images of all its requests, decodes
and preprocesses them with the SDK's ``load_image`` + ``preprocess_batch``, sends the decodable
ones to the network model (``parameters.core_model``: ONNX Runtime or TensorRT, same repository)
in batches of at most ``parameters.core_max_batch``, and answers with the SDK's ``Result``
(decision rule, scores, mask at the image's size). An image that cannot be decoded is an error
record, never sent to the network; a failing network call fails the requests of that call.
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
    detect_bytes,
    encode,
    read_model_metadata,
)
from ipad_sdk.metadata import INPUT_NAME, OUTPUT_NAMES


class TritonPythonModel:
    """The ``<name>_detect`` model (see the module docstring)."""

    def initialize(self, args: dict[str, str]) -> None:
        params = json.loads(args["model_config"]).get("parameters", {})
        self.core = params["core_model"]["string_value"]
        self.core_max_batch = int(params["core_max_batch"]["string_value"])
        folder = Path(args["model_repository"], args["model_version"])
        self.config, self.input_format = read_model_metadata(folder / METADATA_FILE)

    def execute(self, requests: list[Any]) -> list[Any]:
        per_request = [
            [bytes(b) for b in pb_utils.get_input_tensor_by_name(r, INPUT).as_numpy()[:, 0]]
            for r in requests
        ]
        blobs = [blob for blobs in per_request for blob in blobs]
        try:
            items = detect_bytes(blobs, self.config, self.input_format, self._network,
                                 self.core_max_batch)  # fmt: skip
        except IpadError as exc:
            error = pb_utils.TritonError(f"{self.core}: {exc}")
            return [pb_utils.InferenceResponse(error=error) for _ in requests]
        responses, start = [], 0
        for blobs in per_request:
            columns = encode(items[start : start + len(blobs)])
            start += len(blobs)
            tensors = [pb_utils.Tensor(name, column) for name, column in columns.items()]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses

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
