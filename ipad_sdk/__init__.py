"""ipad-sdk: Image Perceptual Artifact Detection (clean / ghosting / lens flare / moire).

``import ipad_sdk`` needs numpy and pillow only; the PyTorch, ONNX Runtime and TensorRT backends
are imported when a model file that needs them is opened::

    from ipad_sdk import Detector
    result = Detector("model.safetensors").detect("photo.jpg")
    print(result.label, result.scores)
"""

from ._version import __version__
from .detector import Detector
from .errors import BackendUnavailable, InputError, IpadError, ModelError, OutputError
from .io import Named, load_image
from .metadata import ModelConfig
from .result import Failure, Result

__all__ = [
    "BackendUnavailable",
    "Detector",
    "Failure",
    "InputError",
    "IpadError",
    "ModelConfig",
    "ModelError",
    "Named",
    "OutputError",
    "Result",
    "__version__",
    "load_image",
]
