"""The former home of ``ipad detect``'s runner, kept so that ``from ipad_sdk.batch import ...``
goes on working: the runner is :mod:`ipad_sdk.runner`, folder search :mod:`ipad_sdk.discover`, the
writers :mod:`ipad_sdk.outputs`."""

from .discover import IMAGE_SUFFIXES, discover
from .outputs import (
    PROVENANCE_KEYS,
    RecordWriter,
    check_out_dir,
    output_error,
    output_keys,
    png_bytes,
    write_output,
)
from .runner import JOURNAL_NAME, BatchSummary, ResumeError, run_batch, run_settings

__all__ = ["IMAGE_SUFFIXES", "JOURNAL_NAME", "PROVENANCE_KEYS", "BatchSummary", "RecordWriter",
           "ResumeError", "check_out_dir", "discover", "output_error", "output_keys", "png_bytes",
           "run_batch", "run_settings", "write_output"]  # fmt: skip
