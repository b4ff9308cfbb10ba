"""One exception hierarchy for the SDK.

Every error that the SDK raises on purpose derives from `IpadError`. Input and model errors
also derive from `ValueError`, so callers that only know the standard library still catch
them; messages always start with the offending input or file.
"""

from __future__ import annotations


class IpadError(Exception):
    """Base class of every error raised by ipad_sdk on purpose."""


class InputError(IpadError, ValueError):
    """An image input is unusable: missing, not an image, truncated, too large, NaN, bad shape.

    ``source`` is the name of the input it concerns where the input has one (a path, or the name
    given with :class:`~ipad_sdk.io.Named`; set by :class:`~ipad_sdk.Detector`), else ``None``;
    the message starts with that name.
    """

    def __init__(self, *args: object, source: str | None = None) -> None:
        super().__init__(*args)
        self.source = source


class ModelError(IpadError, ValueError):
    """A model file (bundle, ONNX, engine) is missing, corrupt, foreign or inconsistent."""


class BackendUnavailable(IpadError, ImportError):
    """The runtime that a model file needs is not installed (e.g. torch for a bundle)."""


class OutputError(IpadError):
    """An output cannot be written: disk full, read-only folder, a file or folder in the way."""
