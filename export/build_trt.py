"""``python export/build_trt.py``: ``ipad export trt`` with the same options.

See :mod:`ipad_sdk.export.trt`. Needs ipad-sdk installed with onnx and TensorRT:
``pip install -e ".[export,trt]"`` in this checkout (or full TensorRT instead of the ``trt`` extra).
"""

try:
    from ipad_sdk.export.trt import main
except ModuleNotFoundError as exc:
    if exc.name != "ipad_sdk":
        raise
    raise SystemExit(
        "build_trt.py needs ipad-sdk installed: pip install -e '.[export,trt]' (in this checkout)"
    ) from None

if __name__ == "__main__":
    raise SystemExit(main())
