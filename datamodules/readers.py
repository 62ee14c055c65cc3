"""Video readers: decord first, PyAV as a per-sample fallback, behind one small interface.

Readers are opened inside the worker, per sample (decord#294: a reader created in the main process
and sent to workers misbehaves), and closed right after use (decord/PyAV leak otherwise).
"""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np
import torch


class DecodeError(RuntimeError):
    """A video could not be decoded (empty, truncated, not a video, no video stream, ...)."""


class VideoReader(Protocol):
    """What sampling needs from a decoder: a frame count and random access to frames."""

    num_frames: int

    def get_frames(self, indices: Sequence[int]) -> torch.Tensor:
        """uint8 (len(indices), H, W, 3) RGB frames, in the order of `indices` (repeats allowed)."""
        ...

    def close(self) -> None: ...


def _unique_sorted(indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique indices (decoders never seek backwards then) and the map back to the request."""
    unique, inverse = np.unique(np.asarray(indices, dtype=np.int64), return_inverse=True)
    return unique, inverse


def _in_request_order(frames: torch.Tensor, unique: np.ndarray, inverse: np.ndarray) -> torch.Tensor:
    """Frames decoded for the sorted unique indices, rearranged to the request (no copy if it was sorted)."""
    if np.array_equal(inverse, np.arange(len(unique))):
        return frames
    return frames[torch.from_numpy(inverse)]


class DecordReader:
    """decord.VideoReader with sorted, de-duplicated `get_batch` calls and no global bridge."""

    def __init__(self, path: str, num_threads: int = 1) -> None:
        import decord  # imported here so that workers import it themselves

        try:
            self._vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=num_threads)
        except Exception as err:  # decord raises RuntimeError / DECORDError with FFmpeg messages
            raise DecodeError(f"decord cannot open {path}: {err}") from err
        self.path = path
        self.num_frames = len(self._vr)
        if self.num_frames <= 0:
            raise DecodeError(f"decord found no frames in {path}")

    def get_frames(self, indices: Sequence[int]) -> torch.Tensor:
        unique, inverse = _unique_sorted(indices)
        try:
            batch = self._vr.get_batch(unique.tolist()).asnumpy()
        except Exception as err:
            raise DecodeError(f"decord failed on frames {unique[0]}..{unique[-1]} of {self.path}: {err}") from err
        if batch.ndim != 4 or batch.shape[0] != len(unique) or batch.shape[-1] != 3:
            raise DecodeError(f"decord returned shape {batch.shape} for {len(unique)} frames of {self.path}")
        return _in_request_order(torch.from_numpy(batch), unique, inverse)

    def close(self) -> None:
        del self._vr


class PyAVReader:
    """PyAV decoding: slower than decord but more tolerant of odd or damaged files.

    At open, the packets are demuxed (no decoding) to list every frame's timestamp and the keyframes,
    so frame i is the i-th timestamp in presentation order: exact with variable frame rates and
    B-frames. `get_frames` seeks to the keyframe before the first wanted frame and decodes forward.
    One thread per decoder (`thread_type="SLICE"`): frame threading can deadlock and oversubscribes workers.
    """

    def __init__(self, path: str, num_threads: int = 1) -> None:
        import av

        try:
            self._container = av.open(path)
        except Exception as err:
            raise DecodeError(f"PyAV cannot open {path}: {err}") from err
        self.path = path
        try:
            if not self._container.streams.video:
                raise DecodeError(f"{path} has no video stream")
            self._stream = self._container.streams.video[0]
            self._stream.thread_type = "SLICE"
            self._stream.thread_count = num_threads
            self._pts, self._keyframes = self._index()
        except DecodeError:
            self.close()
            raise
        except Exception as err:
            self.close()
            raise DecodeError(f"PyAV cannot read the packets of {path}: {err}") from err
        self.num_frames = len(self._pts)
        if self.num_frames == 0:
            self.close()
            raise DecodeError(f"PyAV found no video frames in {path}")

    def _index(self) -> tuple[list[int], list[int]]:
        """Presentation timestamps of all frames (sorted) and of the keyframes."""
        pts, keyframes = [], []
        for packet in self._container.demux(self._stream):
            if packet.pts is None or packet.size == 0:
                continue
            pts.append(packet.pts)
            if packet.is_keyframe:
                keyframes.append(packet.pts)
        return sorted(pts), sorted(keyframes)

    def get_frames(self, indices: Sequence[int]) -> torch.Tensor:
        unique, inverse = _unique_sorted(indices)
        wanted = {self._pts[min(int(i), self.num_frames - 1)]: k for k, i in enumerate(unique)}
        first, last = min(wanted), max(wanted)
        start = max((k for k in self._keyframes if k <= first), default=self._pts[0])
        frames: list[np.ndarray | None] = [None] * len(unique)
        try:
            self._container.seek(start, stream=self._stream, backward=True, any_frame=False)
            for frame in self._container.decode(self._stream):
                if frame.pts in wanted:
                    frames[wanted[frame.pts]] = frame.to_ndarray(format="rgb24")
                if frame.pts is not None and frame.pts >= last:
                    break
        except Exception as err:
            raise DecodeError(f"PyAV failed while decoding {self.path}: {err}") from err
        if all(f is None for f in frames):
            raise DecodeError(f"PyAV decoded none of frames {unique[0]}..{unique[-1]} of {self.path}")
        # A frame the decoder did not return (damaged stream): repeat the nearest earlier (else later) one.
        filled = next(f for f in frames if f is not None)
        for k, frame in enumerate(frames):
            filled = frames[k] = frame if frame is not None else filled
        return _in_request_order(torch.from_numpy(np.stack(frames)), unique, inverse)

    def close(self) -> None:
        self._container.close()


BACKENDS = {"decord": DecordReader, "pyav": PyAVReader}


def read_frames(path: str, choose_indices, backend: str = "decord", num_threads: int = 1,
                fallback: str | None = "pyav") -> torch.Tensor:
    """Open `path`, pick frame indices from its length with `choose_indices(num_frames)`, decode them.

    On a `DecodeError` from `backend` the same request is retried with `fallback`; if that fails
    too, the fallback's error is raised with both messages.
    """
    backends = [backend] + ([fallback] if fallback and fallback != backend else [])
    errors: list[str] = []
    for name in backends:
        if name not in BACKENDS:
            raise ValueError(f"data.backend={name!r} is not one of {sorted(BACKENDS)}")
        reader = None
        try:
            reader = BACKENDS[name](path, num_threads=num_threads)
            return reader.get_frames(choose_indices(reader.num_frames))
        except DecodeError as err:
            errors.append(f"{name}: {err}")
        finally:
            if reader is not None:
                reader.close()
    raise DecodeError(" | ".join(errors))
