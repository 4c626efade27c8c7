"""The Video and Live tabs' work: a video file's report, and one camera frame's answer.

Limits keep one request's cost bounded on a 2-core server (stated in the UI and docs/app.md):
videos up to MAX_VIDEO_SECONDS long and within the upload limit (webapp.server.MAX_UPLOAD_MB),
at most MAX_SAMPLED_FRAMES frames classified (longer videos are sampled more sparsely),
Grad-CAM burnt into at most MAX_CAM_FRAMES of them.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from cifar_cnn.classifier import CifarClassifier
from cifar_cnn.data.images import centre_square
from cifar_cnn.report.plots import plot_video_timeline
from cifar_cnn.video import (
    VideoClassification,
    VideoInfo,
    classify_video,
    read_frames,
    video_info,
    write_video,
)
from webapp.events import Classification, classify, explain

MAX_VIDEO_SECONDS = 120
MAX_SAMPLED_FRAMES = 600
#: Grad-CAM costs about 35 ms a frame on 2 cores: with it, videos are sampled down to this.
MAX_CAM_FRAMES = 120
#: Annotated frames are the model's square view at this size.
FRAME_SIZE = 256
#: The Live tab's frame rate is measured over this many most recent answers.
FPS_WINDOW = 20
FLAG_COLOUR = (230, 60, 60)


@dataclass
class VideoReport:
    result: VideoClassification
    timeline: Path  # PNG: each class's probability over time, flagged frames shaded
    changes: list[tuple[np.ndarray, str]]  # the frame where each label starts, captioned
    annotated: Path  # WebM: the sampled frames with their label burnt in
    summary: str  # markdown


def plan_sampling(path: str, limit: int) -> tuple[VideoInfo, int]:
    """The video's facts and every how-many-th frame to classify so that at most `limit` are;
    a ValueError for a video over MAX_VIDEO_SECONDS."""
    info = video_info(path)
    if info.duration > MAX_VIDEO_SECONDS:
        raise ValueError(
            f"{Path(path).name}: {info.duration:.0f} s long; the app takes videos up to "
            f"{MAX_VIDEO_SECONDS} s (cifar-predict has no such limit)"
        )
    every = max(1, math.ceil(info.frame_count / limit)) if info.frame_count > 0 else 1
    return info, every


def analyse_video(
    classifier: CifarClassifier, path: str, folder: Path, gradcam: bool = False
) -> VideoReport:
    """Classify a video's frames and draw what the Video tab shows, into `folder`."""
    name = Path(path).name
    limit = MAX_CAM_FRAMES if gradcam else MAX_SAMPLED_FRAMES
    info, every = plan_sampling(path, limit)
    result = classify_video(classifier, path, every, max_frames=limit)
    stem = f"{Path(path).stem[:40]}-{time.time_ns()}"
    timeline = plot_video_timeline(result, folder / f"{stem}-timeline.png")
    starts = {f.index for f in result.changes()}
    changes: list[tuple[np.ndarray, str]] = []

    def annotated_frames():
        decoded = read_frames(path, every, limit)
        for (index, _, frame), answer in zip(decoded, result.frames, strict=True):
            if gradcam:
                picture = explain(classifier, frame, class_name=answer.label).overlay
            else:
                picture = square(frame)
            confidence = float(answer.probabilities.max())
            picture = annotate(picture, answer.label, confidence, answer.out_of_distribution)
            if index in starts:
                changes.append((picture, f"{answer.time:.1f} s: {answer.label}"))
            yield picture

    fps = info.fps / every if info.fps > 0 else 1.0
    annotated = write_video(folder / f"{stem}-annotated.webm", annotated_frames(), fps=fps)
    return VideoReport(result, timeline, changes, annotated, summarise(result, name, gradcam))


def video_answer(classifier: CifarClassifier, path: str) -> dict:
    """What an API or MCP caller gets for a video: its segments and each classified frame,
    within the Video tab's limits."""
    info, every = plan_sampling(path, MAX_SAMPLED_FRAMES)
    result = classify_video(classifier, path, every, max_frames=MAX_SAMPLED_FRAMES)
    return {
        "duration": round(info.duration, 3),
        "fps": round(info.fps, 3),
        "every": every,
        "segments": [
            {"start": round(start, 3), "end": round(end, 3), "label": label}
            for start, end, label in result.segments()
        ],
        "flagged": sum(f.out_of_distribution for f in result.frames),
        "frames": [
            {k: row[k] for k in ("time", "label", "confidence", "out_of_distribution")}
            for row in result.rows()
        ],
    }


def summarise(result: VideoClassification, name: str, gradcam: bool) -> str:
    info, frames = result.info, result.frames
    flagged = sum(f.out_of_distribution for f in frames)
    sampled = (
        f"{len(frames)} frames classified (every frame)"
        if result.every == 1
        else f"{len(frames)} frames classified (every {result.every}th of {info.frame_count})"
    )
    segments = "; ".join(
        f"{start:.1f}-{end:.1f} s **{label}**" for start, end, label in result.segments()
    )
    text = f"**{name}**: {info.duration:.1f} s at {info.fps:.0f} fps, {sampled}. {segments}."
    if flagged:
        text += (
            f"\n\n**{flagged} of {len(frames)} frames may not show one of the 10 classes** "
            "(shaded in the timeline, framed in red in the video)."
        )
    if gradcam:
        text += f" Grad-CAM is burnt in (at most {MAX_CAM_FRAMES} frames are classified then)."
    return text


def annotate(picture: np.ndarray, label: str, confidence: float, flagged: bool) -> np.ndarray:
    """The label and confidence written on a frame; a red frame and '?' when flagged."""
    picture = np.ascontiguousarray(cv2.resize(picture, (FRAME_SIZE, FRAME_SIZE)))
    text = f"{label} {100 * confidence:.0f}%" + (" ?" if flagged else "")
    cv2.rectangle(picture, (0, 0), (FRAME_SIZE, 30), (0, 0, 0), thickness=-1)
    white = (255, 255, 255)
    cv2.putText(picture, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.7, white, 2, cv2.LINE_AA)
    if flagged:
        cv2.rectangle(picture, (2, 2), (FRAME_SIZE - 3, FRAME_SIZE - 3), FLAG_COLOUR, thickness=4)
    return picture


def square(frame: np.ndarray) -> np.ndarray:
    """The centred square of a frame (what the model sees), at display size."""
    picture = centre_square(Image.fromarray(frame))
    return np.asarray(picture.resize((FRAME_SIZE, FRAME_SIZE), Image.Resampling.BOX))


@dataclass
class LiveAnswer:
    classification: Classification
    overlay: np.ndarray | None  # the Grad-CAM overlay, when asked for
    fps: float  # answers per second over the last FPS_WINDOW frames of this session


def live_frame(
    classifier: CifarClassifier, frame: np.ndarray, gradcam: bool, times: deque | None
) -> tuple[LiveAnswer, deque]:
    """One camera frame's answer, and this session's answer times (for the frame rate)."""
    classification = classify(classifier, frame, top_k=3)
    overlay = explain(classifier, frame).overlay if gradcam else None
    times = times if times is not None else deque(maxlen=FPS_WINDOW)
    times.append(time.perf_counter())
    fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    return LiveAnswer(classification, overlay, fps), times
