"""cifar_cnn.video: videos decode frame by frame, sample, and classify like pictures."""

import re

import numpy as np
import pytest
from PIL import Image

from cifar_cnn.data.cifar10 import REPO_ROOT
from cifar_cnn.video import classify_video, read_frames, slideshow, video_info, write_video

EXAMPLES = REPO_ROOT / "examples"
#: Shipped CIFAR-10 test images the flagship classifies with high confidence, in clip order.
SCENES = ["test0000_cat.png", "test0001_ship.png", "test0003_airplane.png"]


def scenes() -> list[np.ndarray]:
    return [np.asarray(Image.open(EXAMPLES / name).convert("RGB")) for name in SCENES]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """3 scenes of 10 frames each at 10 fps: cat for 0-1 s, ship 1-2 s, airplane 2-3 s."""
    path = tmp_path_factory.mktemp("video") / "scenes.mp4"
    return write_video(path, slideshow(scenes(), frames_each=10), fps=10)


def test_a_clip_of_known_scenes_gets_each_scenes_label(flagship, clip):
    result = flagship.classify_video(clip)

    assert [f.index for f in result.frames] == list(range(30))
    assert result.segments() == [(0.0, 1.0, "cat"), (1.0, 2.0, "ship"), (2.0, 3.0, "airplane")]
    assert [f.index for f in result.changes()] == [0, 10, 20]
    assert not any(f.out_of_distribution for f in result.frames)
    assert result.probabilities.shape == (30, 10)


def test_frames_classify_exactly_like_the_same_pictures(flagship, clip):
    frames = [frame for _, _, frame in read_frames(clip, every=10)]
    by_video = flagship.classify_video(clip, every=10).probabilities
    np.testing.assert_allclose(by_video, flagship.predict(frames), rtol=1e-5, atol=1e-6)


def test_sampling_every_nth_frame_keeps_the_times(flagship, clip):
    result = flagship.classify_video(clip, every=4)
    assert [f.index for f in result.frames] == [0, 4, 8, 12, 16, 20, 24, 28]
    np.testing.assert_allclose(result.times, [0.0, 0.4, 0.8, 1.2, 1.6, 2.0, 2.4, 2.8])
    assert video_info(clip).fps == 10 and video_info(clip).duration == 3.0
    rows = result.rows()
    assert rows[3]["frame"] == 12 and rows[3]["label"] == "ship" and "airplane" in rows[3]


def test_the_ensemble_votes_on_each_frame(clip):
    from cifar_cnn.ensemble import CifarEnsemble

    ensemble = CifarEnsemble.from_pretrained(REPO_ROOT / "models" / "ensemble")
    result = ensemble.classify_video(clip, every=5)
    assert [label for *_, label in result.segments()] == ["cat", "ship", "airplane"]


@pytest.mark.parametrize("suffix", [".webm", ".mov", ".avi", ".gif"])
def test_webm_mov_avi_and_gif_decode(flagship, tmp_path, suffix):
    path = tmp_path / f"clip{suffix}"
    frames = [frame.copy() for frame in slideshow(scenes()[:2], frames_each=4, size=64)]
    for i, frame in enumerate(frames):
        frame[0, 0] = 30 * i  # distinct frames: a GIF writer merges identical ones
    if suffix == ".gif":
        pictures = [Image.fromarray(f) for f in frames]
        pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=100, loop=0)
    else:
        write_video(path, frames, fps=10)
    labels = [f.label for f in flagship.classify_video(path).frames]
    assert labels == ["cat"] * 4 + ["ship"] * 4


def test_bad_files_get_clear_errors(flagship, clip, tmp_path):
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clip.read_bytes()[: clip.stat().st_size // 3])
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 50)
    empty = tmp_path / "empty.webm"
    empty.write_bytes(b"")
    for path, message in [
        (truncated, "truncated.mp4: cannot be decoded as a video"),
        (text, "notes.mp4: cannot be decoded as a video (MP4, WebM, MOV, AVI or GIF expected"),
        (empty, "empty.webm: empty file (0 bytes)"),
        (tmp_path / "missing.mp4", "missing.mp4: no such file"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            flagship.classify_video(path)
    with pytest.raises(ValueError, match="30 frames sampled every 1 are 30 frames, over the limit"):
        flagship.classify_video(clip, max_frames=29)
    with pytest.raises(ValueError, match="every must be a whole number"):
        flagship.classify_video(clip, every=0)


def test_write_video_refuses_unknown_containers_and_leaves_no_partial_file(tmp_path):
    with pytest.raises(ValueError, match="write .webm, .mp4, .mov or .avi"):
        write_video(tmp_path / "clip.mkv", slideshow(scenes(), 1), fps=5)
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "clip.webm", [], fps=5)
    assert list(tmp_path.iterdir()) == []


def test_classify_video_is_the_library_call_behind_the_methods(flagship, clip):
    direct = classify_video(flagship, clip, every=10)
    assert [f.label for f in direct.frames] == ["cat", "ship", "airplane"]


def test_prefetching_hands_on_errors_and_stops_with_its_consumer():
    import itertools
    import threading

    from cifar_cnn.video import prefetched

    def failing():
        yield 1
        raise ValueError("clip.mp4: decoding failed")

    with pytest.raises(ValueError, match="decoding failed"):
        list(prefetched(failing()))
    before = threading.active_count()
    items = prefetched(itertools.count(), depth=4)  # endless: only the consumer can stop it
    assert list(itertools.islice(items, 10)) == list(range(10))
    items.close()  # the consumer stops early: the producer thread ends too
    assert threading.active_count() == before


def test_a_container_without_a_frame_count_has_its_frames_counted(flagship, tmp_path):
    import cv2

    # A raw MJPEG stream has no container to say how many frames it holds.
    clip = tmp_path / "stream.mjpeg"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 5, (128, 128))
    for frame in slideshow(scenes(), frames_each=5):
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    capture = cv2.VideoCapture(str(clip))
    declared = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    capture.release()
    assert not declared > 0  # OpenCV reports nothing usable (a huge negative number here)
    assert video_info(clip).frame_count == 15
    labels = [f.label for f in flagship.classify_video(clip, every=5).frames]
    assert labels == ["cat", "ship", "airplane"]
