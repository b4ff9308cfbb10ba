"""``python export/export_onnx.py``: ``ipad export onnx`` with the same options.

See :mod:`ipad_sdk.export.onnx`. Needs ipad-sdk installed with the ``export`` extra:
``pip install -e ".[export]"`` in this checkout.
"""

try:
    from ipad_sdk.export.onnx import main
except ModuleNotFoundError as exc:
    if exc.name != "ipad_sdk":
        raise
    raise SystemExit(
        "export_onnx.py needs ipad-sdk installed: pip install -e '.[export]' (in this checkout)"
    ) from None

if __name__ == "__main__":
    raise SystemExit(main())
