"""Export tools behind ``ipad export``: :mod:`.onnx` (ONNX, FP16, INT8, parity check), :mod:`.trt`
(TensorRT engine plans) and :mod:`.triton_repo` (Triton model repositories).

Each module imports its heavy runtime (torch, onnx, ONNX Runtime, TensorRT) only when it runs.
"""
