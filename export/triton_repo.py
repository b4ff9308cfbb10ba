"""``python export/triton_repo.py``: ``ipad export triton-repo`` with the same options.

See :mod:`ipad_sdk.export.triton_repo`. Needs ipad-sdk installed (and ``onnx`` to read an ONNX
model): ``pip install -e ".[export]"`` in this checkout.
"""

try:
    from ipad_sdk.export.triton_repo import main
except ModuleNotFoundError as exc:
    if exc.name != "ipad_sdk":
        raise
    raise SystemExit(
        "triton_repo.py needs ipad-sdk installed: pip install -e '.[export]' (in this checkout)"
    ) from None

if __name__ == "__main__":
    raise SystemExit(main())
