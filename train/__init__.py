"""Training-side code of ipad-sdk: artifact synthesis, datasets and (later) three-stage training.

Not installed with the SDK; run from a checkout (`python train/<tool>.py` or `import train`).
"""
