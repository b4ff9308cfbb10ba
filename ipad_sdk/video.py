"""Video input through PyAV (extra ``video``), imported only when a video is met.

Every ``stride``-th frame (in presentation order, from frame 0) becomes a named input: its source
is ``<video>#frame=<index>``, unique per frame and used as the output key of masks and overlays,
and its record also holds ``video``, ``frame`` (the index) and ``timestamp`` (seconds, the frame's
``pts * time_base``). A corrupt or truncated video gives the frames that decoded, then raises
`InputError`. Truncation is seen where the container declares a frame
count (MP4, MOV, AVI) or its size (a Matroska/WebM segment: every muxer writing to a seekable file
declares it; a live recording with an unknown size can't tell a cut). Damage the decoder detects
is an error too (``err_detect=explode``: FFmpeg would conceal it with smeared blocks, artifacts of
its own); damage that the demuxer resyncs past or that a decoder can't detect (VP8/VP9 have no
checksums) is not seen. The decode is bounded: at most one packet per byte of the file is
demuxed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .decoders import require
from .errors import InputError

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".avi", ".webm"})


@dataclass(frozen=True)
class VideoFrame:
    """One sampled frame of a video.

    Attributes:
        video: Path of the video.
        index: The frame's index in presentation order, from 0.
        timestamp: The frame's time in seconds (``pts * time_base``).
        pixels: The frame as ``HxWx3`` RGB pixels.
    """

    video: str
    index: int
    timestamp: float
    pixels: np.ndarray

    @property
    def source(self) -> str:
        """The frame's name, ``<video>#frame=<index>`` (see `frame_source`)."""
        return frame_source(self.video, self.index)


def frame_source(video: str, index: int) -> str:
    """Name one frame of a video.

    Args:
        video: Path of the video.
        index: The frame's index in presentation order.

    Returns:
        The name, e.g. ``clip.mp4#frame=12``, unique per frame, the output key of its records,
            masks and overlays.
    """
    return f"{video}#frame={index}"


def is_video(path: str | os.PathLike[str]) -> bool:
    """Tell a video from an image by its suffix.

    Args:
        path: A file path.

    Returns:
        True for ``.mp4``, ``.mov``, ``.mkv``, ``.avi`` and ``.webm`` (any case).
    """
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def iter_frames(path: str | os.PathLike[str], stride: int, max_pixels: int) -> Iterator[VideoFrame]:
    """Decode every ``stride``-th frame of a video.

    Args:
        path: Path of the video.
        stride: Keep frames ``0, stride, 2*stride, ...`` (in presentation order).
        max_pixels: Largest accepted ``width * height`` of a frame.

    Yields:
        The sampled frames, in order.

    Raises:
        ValueError: ``stride`` is below 1.
        BackendUnavailable: PyAV (extra ``video``) is not installed.
        InputError: The video cannot be opened, has no video stream, or is corrupt or truncated
            (raised after the frames that decoded were yielded).
    """
    if stride < 1:
        raise ValueError(f"frame stride must be >= 1, got {stride}")
    name = os.fspath(path)
    av = require("av", "video", f"{name}: video")
    try:
        container = av.open(name)
    except (av.FFmpegError, OSError) as exc:
        raise InputError(f"{name}: cannot open video: {exc}") from None
    with container:
        if not container.streams.video:
            raise InputError(f"{name}: no video stream")
        stream = container.streams.video[0]
        declared, actual = _declared_size(name), os.path.getsize(name)
        # a damaged bitstream is an error, not concealed (smeared blocks are artifacts themselves)
        stream.codec_context.options = {"err_detect": "explode"}
        decoded = 0
        for frame in _decoded(av, container, stream, name, _packet_limit(name)):
            if decoded % stride == 0:
                yield _sampled(frame, name, decoded, max_pixels)
            decoded += 1
        if stream.frames and decoded < stream.frames:
            raise InputError(
                f"{name}: truncated video: {decoded} of {stream.frames} frames decoded"
            )
        if declared is not None and declared > actual:
            raise InputError(
                f"{name}: truncated video: the file has {actual:,} of the {declared:,} bytes its "
                f"container declares; {decoded} frames decoded"
            )


def _packet_limit(name: str) -> int:
    """Packets a file can hold: at most one per byte (the bound that ends any decode)."""
    return max(os.path.getsize(name), 1)


_EBML, _SEGMENT = b"\x1a\x45\xdf\xa3", b"\x18\x53\x80\x67"


def _declared_size(name: str) -> int | None:
    """The file size a Matroska/WebM file declares (the end of its Segment element), or ``None``
    (another container, or a segment of unknown size)."""
    try:
        with open(name, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return None
    if not head.startswith(_EBML):
        return None
    header = _vint(head, len(_EBML))
    if header is None or header[0] is None:
        return None
    at = header[1] + header[0]
    if head[at : at + 4] != _SEGMENT:
        return None
    segment = _vint(head, at + 4)
    if segment is None or segment[0] is None:
        return None
    return segment[1] + segment[0]


def _vint(data: bytes, at: int) -> tuple[int | None, int] | None:
    """An EBML variable-size integer at ``data[at]``: (its value, ``None`` for "unknown"; the
    offset after it), or ``None`` where ``data`` holds none."""
    if at >= len(data) or data[at] == 0:
        return None
    length = 9 - data[at].bit_length()  # the leading zero bits, plus the marker bit
    if at + length > len(data):
        return None
    value = int.from_bytes(data[at : at + length], "big") & ((1 << (7 * length)) - 1)
    return (None if value == (1 << (7 * length)) - 1 else value), at + length


def _decoded(av: Any, container: Any, stream: Any, name: str, limit: int) -> Iterator[Any]:
    """The video frames of ``stream`` in presentation order, FFmpeg errors as InputError."""
    try:
        for count, packet in enumerate(container.demux(stream)):
            if count >= limit:
                raise InputError(f"{name}: corrupt video: more packets than bytes")
            yield from packet.decode()
    except av.FFmpegError as exc:
        raise InputError(f"{name}: corrupt video: {exc}") from None


def _sampled(frame: Any, name: str, index: int, max_pixels: int) -> VideoFrame:
    from .io import check_size

    check_size(frame.width, frame.height, name, max_pixels)
    if frame.pts is None or frame.time_base is None:
        raise InputError(f"{name}: frame {index} has no timestamp")
    pixels = np.ascontiguousarray(frame.to_ndarray(format="rgb24"))
    return VideoFrame(name, index, float(frame.pts * frame.time_base), pixels)
