"""Video files, frame by frame: decoded with OpenCV, sampled, classified in batches.

>>> from cifar_cnn import CifarClassifier
>>> clf = CifarClassifier.from_pretrained("models/resnet_fast")
>>> result = clf.classify_video("clip.mp4", every=5)   # every 5th frame
>>> result.segments()                                   # [(0.0, 2.4, 'cat'), (2.4, 5.0, 'ship')]
>>> result.frames[0]                                    # FrameResult(index=0, time=0.0, ...)

Each sampled frame goes through the same centre crop and resize to 32x32 as a picture does
(`cifar_cnn.data.images.resize_to_model`), and gets the model's out-of-distribution check.
MP4, WebM, MOV, AVI and GIF decode with the FFmpeg inside OpenCV's wheel: no system package.
"""

from __future__ import annotations

import dataclasses
import math
import os
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from cifar_cnn.atomic import temporary_sibling
from cifar_cnn.data.images import resize_to_model
from cifar_cnn.trust.ood import predict_and_flag

#: A video may hold at most this many frames decoded for classification (`max_frames`).
DEFAULT_MAX_FRAMES = 5000
#: Frames classified per call of the model.
BATCH_SIZE = 256
#: The codec written for each container: all ship in OpenCV's wheel (H.264 does not). Browsers
#: play WebM; VP8 rather than VP9, which encoded 256x256 noise at 6 frames/s against VP8's 45-60.
CODECS = {".webm": "VP80", ".mp4": "mp4v", ".avi": "MJPG", ".mov": "mp4v"}


@dataclass(frozen=True)
class VideoInfo:
    """What the container says: frames per second, frame count (0 when unknown) and size."""

    fps: float
    frame_count: int
    width: int
    height: int

    @property
    def duration(self) -> float:
        """Seconds, from the frame count and rate (0 when either is unknown)."""
        return self.frame_count / self.fps if self.fps > 0 and self.frame_count > 0 else 0.0


@dataclass(frozen=True)
class FrameResult:
    index: int  # frame number in the video, from 0
    time: float  # seconds from the start
    label: str
    probabilities: np.ndarray  # (10,) calibrated, in class order
    out_of_distribution: bool  # the model's detector flags this frame


@dataclass
class VideoClassification:
    """Per-frame results of `classify_video`, with the video's facts."""

    frames: list[FrameResult]
    class_names: tuple[str, ...]
    info: VideoInfo
    every: int

    @property
    def probabilities(self) -> np.ndarray:
        """(frames, 10): each sampled frame's probabilities."""
        return np.stack([f.probabilities for f in self.frames])

    @property
    def times(self) -> np.ndarray:
        return np.array([f.time for f in self.frames])

    def changes(self) -> list[FrameResult]:
        """The first frame and every frame whose label differs from the frame before."""
        return [
            f for i, f in enumerate(self.frames) if i == 0 or f.label != self.frames[i - 1].label
        ]

    def segments(self) -> list[tuple[float, float, str]]:
        """(start, end, label) for each run of frames with the same label; a run ends where the
        next begins (the last at the video's end, or its last sampled frame)."""
        starts = self.changes()
        end_of_video = max(self.info.duration, self.frames[-1].time)
        ends = [f.time for f in starts[1:]] + [end_of_video]
        return [(f.time, end, f.label) for f, end in zip(starts, ends, strict=True)]

    def rows(self) -> list[dict[str, Any]]:
        """One flat record per sampled frame (for CSV or JSON)."""
        return [
            {
                "frame": f.index,
                "time": round(f.time, 3),
                **answer_row(self.class_names, f.probabilities, f.out_of_distribution),
            }
            for f in self.frames
        ]


def answer_row(
    class_names: tuple[str, ...], probabilities: np.ndarray, flagged: bool
) -> dict[str, Any]:
    """One picture's or frame's answer as a flat record: label, confidence,
    out_of_distribution, then each class's probability (rounded to 4 decimals)."""
    return {
        "label": class_names[int(probabilities.argmax())],
        "confidence": round(float(probabilities.max()), 4),
        "out_of_distribution": bool(flagged),
        **dict(zip(class_names, probabilities.astype(float).round(4).tolist(), strict=True)),
    }


def video_info(path: str | os.PathLike) -> VideoInfo:
    """The container's facts, or a ValueError if OpenCV cannot open `path` as a video. When the
    container does not say how many frames it holds (browser-recorded WebM often does not),
    they are counted, by a decoding pass without colour conversion."""
    capture = _open(path)
    try:
        info = _info(capture)
        if info.frame_count > 0:
            return info
        count = 0
        while capture.grab():
            count += 1
        return dataclasses.replace(info, frame_count=count)
    finally:
        capture.release()


def read_frames(
    path: str | os.PathLike, every: int = 1, max_frames: int = DEFAULT_MAX_FRAMES
) -> Iterator[tuple[int, float, np.ndarray]]:
    """(frame index, time in seconds, RGB uint8 frame) for every `every`-th frame of a video.

    Raises ValueError for a file that is not a video OpenCV can decode, for more than
    `max_frames` sampled frames (sample more sparsely), and for a video that stops decoding well
    before the frame count its container declares (truncated or corrupt).
    """
    if not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be a whole number of frames, 1 or more; got {every!r}")
    capture = _open(path)
    try:
        info = _info(capture)
        expected = math.ceil(info.frame_count / every) if info.frame_count > 0 else 0
        if expected > max_frames:
            raise ValueError(
                f"{Path(path).name}: {info.frame_count} frames sampled every {every} are "
                f"{expected} frames, over the limit of {max_frames}; sample more sparsely"
            )
        index = yielded = 0
        while True:
            # grab() decodes without converting the picture: cheap for the frames skipped.
            if not capture.grab():
                break
            if index % every == 0:
                if yielded >= max_frames:
                    raise ValueError(
                        f"{Path(path).name}: more than {max_frames} sampled frames; "
                        "sample more sparsely"
                    )
                ok, frame = capture.retrieve()
                if not ok:
                    break
                time = index / info.fps if info.fps > 0 else float(index)
                yield index, time, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                yielded += 1
            index += 1
    finally:
        capture.release()
    if index == 0:
        raise ValueError(f"{Path(path).name}: no frame could be decoded (corrupt or truncated?)")
    if info.frame_count > 0 and index < 0.9 * info.frame_count:
        raise ValueError(
            f"{Path(path).name}: decoding stopped at frame {index} of the "
            f"{info.frame_count} its header declares (truncated or corrupt)"
        )


def classify_video(
    model: Any,
    path: str | os.PathLike,
    every: int = 1,
    *,
    max_frames: int = DEFAULT_MAX_FRAMES,
    batch_size: int = BATCH_SIZE,
) -> VideoClassification:
    """Classify every `every`-th frame of a video with a CifarClassifier or CifarEnsemble.

    Each frame is checked by the model's own out-of-distribution detector (`predict_and_check`).
    """
    info = video_info(path)
    frames: list[FrameResult] = []
    batch: list[tuple[int, float, np.ndarray]] = []

    def flush() -> None:
        views = np.stack([view for _, _, view in batch])
        probabilities, flagged = predict_and_flag(model, views)
        for (index, time, _), p, flag in zip(batch, probabilities, flagged, strict=True):
            label = model.class_names[int(p.argmax())]
            frames.append(FrameResult(index, time, label, p, bool(flag)))
        batch.clear()

    # Decoding runs a thread ahead (OpenCV and PIL release the GIL): on 2 cores it overlaps the
    # resizing and classification: 277 -> 337 frames/s for 640x640 video on an Intel Xeon with
    # 2 cores (bench/video_fps.py).
    for index, time, frame in prefetched(read_frames(path, every, max_frames)):
        batch.append((index, time, resize_to_model(Image.fromarray(frame))))
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    return VideoClassification(frames, tuple(model.class_names), info, every)


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float) -> Path:
    """Write RGB uint8 frames (all of one size) as a video: `.webm` (VP8), `.mp4` or `.mov`
    (MPEG-4 Part 2) or `.avi` (MJPEG). The file appears whole or not at all."""
    path = Path(path)
    codec = CODECS.get(path.suffix.lower())
    if codec is None:
        raise ValueError(
            f"{path.name}: write .webm, .mp4, .mov or .avi, not {path.suffix or 'none'}"
        )
    staging = temporary_sibling(path)
    writer = None
    try:
        for frame in frames:
            if writer is None:
                shape = frame.shape
                if frame.dtype != np.uint8 or frame.ndim != 3 or shape[2] != 3:
                    raise ValueError(
                        f"frames must be RGB uint8 (H, W, 3), got {frame.dtype} {shape}"
                    )
                height, width = shape[:2]
                writer = cv2.VideoWriter(
                    str(staging), cv2.VideoWriter_fourcc(*codec), fps, (width, height)
                )
                if not writer.isOpened():
                    raise ValueError(f"OpenCV cannot write {codec} video to {path.name}")
            if frame.shape != shape or frame.dtype != np.uint8:
                raise ValueError(f"every frame must be {shape} uint8, got {frame.shape}")
            writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
        if writer is None:
            raise ValueError("no frames to write")
        writer.release()
        os.replace(staging, path)
    finally:
        if writer is not None:
            writer.release()
        staging.unlink(missing_ok=True)
    return path


def write_y4m(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: int) -> Path:
    """Raw YUV 4:2:0 frames in a YUV4MPEG2 file: what Chromium's fake camera plays
    (`--use-file-for-fake-video-capture`), for browser tests and benchmarks of live video."""
    path = Path(path)
    with open(path, "wb") as file:
        for i, frame in enumerate(frames):
            if i == 0:
                height, width = frame.shape[:2]
                header = f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n"
                file.write(header.encode())
            file.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


def slideshow(
    images: Iterable[np.ndarray], frames_each: int, size: int = 128
) -> Iterator[np.ndarray]:
    """Frames showing each RGB uint8 picture, enlarged to `size` x `size`, for `frames_each`
    frames in turn: a video of known content, for tests and benchmarks."""
    for image in images:
        frame = cv2.resize(image, (size, size), interpolation=cv2.INTER_CUBIC)
        for _ in range(frames_each):
            yield frame


def prefetched(items: Iterator[Any], depth: int = 64) -> Iterator[Any]:
    """`items`, produced by a background thread up to `depth` ahead. An exception in the thread
    is raised here; if the consumer stops early, the thread stops too and closes `items`."""
    buffer: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    done = object()

    def put(item: Any) -> bool:
        """Hand `item` on, waiting for room; False once the consumer has gone."""
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        outcome: Any = done
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as error:  # noqa: BLE001 - handed to the consumer to raise
            outcome = error
        finally:
            getattr(items, "close", lambda: None)()  # read_frames releases its decoder
        put(outcome)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def _open(path: str | os.PathLike) -> cv2.VideoCapture:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path.name}: no such file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path.name}: empty file (0 bytes), not a video")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise ValueError(
            f"{path.name}: cannot be decoded as a video (MP4, WebM, MOV, AVI or GIF expected; "
            "truncated and corrupt files fail here too)"
        )
    return capture


def _info(capture: cv2.VideoCapture) -> VideoInfo:
    fps = capture.get(cv2.CAP_PROP_FPS)
    count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    return VideoInfo(
        fps=float(fps) if math.isfinite(fps) and fps > 0 else 0.0,
        frame_count=int(count) if math.isfinite(count) and count > 0 else 0,
        width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
        height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
    )
