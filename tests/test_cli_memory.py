"""The memory benchmark's own arithmetic: resident memory by slice of a run, read from /proc."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from benchmarks.cli_memory import _vm_rss_mib, rss_by_progress  # noqa: E402


def test_rss_by_progress_takes_the_largest_sample_of_each_slice():
    samples = [(0.5, 100.0), (2.0, 300.0), (2.4, 250.0), (5.1, 280.0), (9.9, 290.0), (10.0, 50.0)]
    # wall 10 s, 4 slices of 2.5 s: [0, 2.5) -> 300, [2.5, 5) -> none, [5, 7.5) -> 280, rest -> 290
    assert rss_by_progress(samples, 10.0) == [300.0, 0.0, 280.0, 290.0]
    assert rss_by_progress([], 1.0, parts=2) == [0.0, 0.0]


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_vm_rss_reads_this_process_and_none_for_a_missing_one():
    with open("/proc/self/status") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    assert _vm_rss_mib(os.getpid()) == pytest.approx(kib / 1024, rel=0.5)
    assert _vm_rss_mib(2**22 + 12345) is None  # above pid_max's default ceiling: no such process
