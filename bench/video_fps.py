"""Frames per second: video files through the library, and a live camera through the app.

    python bench/video_fps.py                 # both parts, the flagship
    python bench/video_fps.py --no-live       # video files only (no Chromium needed)

Video files: clips built from the shipped slice's test images (`cifar_cnn.video.slideshow`, one
picture per 10 frames, written as MPEG-4 Part 2 `.mp4` by OpenCV) at two frame sizes, then
`classify_video` on every frame: decoding, the centre crop and resize to 32x32, batched
classification and the out-of-distribution check, timed end to end (median of `--repeats`).
The Video tab's own work (`webapp.video.analyse_video`: the same, plus the timeline plot, a
second decoding pass and the annotated WebM) is timed with and without Grad-CAM burnt in.

Live: `python app.py` (the flagship only) in a child process, and headless Chromium whose fake
camera plays a clip of the same pictures (`--use-file-for-fake-video-capture`) into the Live tab;
after a warm-up, the tab's own "frames per second served" is read every second for `--seconds`
(median and range), with and without Grad-CAM. The page asks for a frame every 50 ms, so 20 is
the most it can show; the browser shares the machine's cores with the server.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).parent))

import cifar_cnn  # noqa: E402,F401  (oneDNN on before TensorFlow loads)
from cifar_cnn.classifier import CifarClassifier  # noqa: E402
from cifar_cnn.data.cifar10 import load_slice  # noqa: E402
from cifar_cnn.video import slideshow, write_video, write_y4m  # noqa: E402

FRAMES_EACH = 10


def make_clip(folder: Path, pictures: np.ndarray, size: int, frames: int) -> Path:
    clip = slideshow(pictures[: frames // FRAMES_EACH], FRAMES_EACH, size=size)
    return write_video(folder / f"clip-{size}.mp4", clip, fps=30)


def timed(fn, repeats: int) -> float:
    fn()  # warm-up: traces the model's graph
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def video_files(model: str, repeats: int, frames: int) -> None:
    from webapp.video import analyse_video

    classifier = CifarClassifier.from_pretrained(model)
    pictures = load_slice().x_test
    print("| what | frame size | frames | seconds (median) | frames/s |")
    print("|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for size in (256, 640):
            clip = make_clip(folder, pictures, size, frames)
            seconds = timed(lambda clip=clip: classifier.classify_video(clip), repeats)
            print(
                f"| classify_video (decode + classify) | {size}x{size} | {frames} "
                f"| {seconds:.2f} | {frames / seconds:.0f} |"
            )
        clip = make_clip(folder, pictures, 256, frames)
        for gradcam, count in ((False, frames), (True, 120)):
            short = make_clip(folder, pictures, 256, count) if gradcam else clip
            seconds = timed(
                lambda short=short, gradcam=gradcam: analyse_video(
                    classifier, str(short), folder, gradcam=gradcam
                ),
                max(1, repeats // 2),
            )
            what = "Video tab, with Grad-CAM" if gradcam else "Video tab (plot, annotated WebM)"
            print(f"| {what} | 256x256 | {count} | {seconds:.2f} | {count / seconds:.0f} |")


def live(model: str, seconds: int, port: int) -> None:
    from app_latency import start_app
    from playwright.sync_api import sync_playwright

    pictures = load_slice().x_test[:6]
    print("\n| Live tab | frames/s served: median | min | max | readings |")
    print("|---|---:|---:|---:|---:|")
    app = start_app(model, port)
    try:
        with tempfile.TemporaryDirectory() as scratch, sync_playwright() as playwright:
            clip = write_y4m(
                Path(scratch) / "camera.y4m", slideshow(pictures, 30, size=480), fps=30
            )
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=[
                    "--headless", "--no-sandbox", "--disable-gpu",
                    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                    f"--use-file-for-fake-video-capture={clip}",
                ],
            )  # fmt: skip
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.grant_permissions(["camera"])
            page = context.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"http://127.0.0.1:{port}/")
            page.get_by_role("tab", name="Live", exact=True).click()
            page.get_by_role("button", name="Click to Access Webcam").click()
            page.locator("#live-camera button", has_text="Record").click()
            for gradcam in (False, True):
                if gradcam:
                    page.get_by_label("Show Grad-CAM (slower)").check()
                time.sleep(5)  # warm-up, and the window of recent answers refills
                readings = []
                for _ in range(seconds):
                    time.sleep(1)
                    text = page.locator("#live-fps").inner_text()
                    found = re.search(r"([0-9.]+) frames per second", text)
                    if found:
                        readings.append(float(found.group(1)))
                what = "with Grad-CAM" if gradcam else "flagship, no Grad-CAM"
                print(
                    f"| {what} | {statistics.median(readings):.1f} | {min(readings):.1f} "
                    f"| {max(readings):.1f} | {len(readings)} |"
                )
            browser.close()
    finally:
        app.terminate()
        app.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="models/resnet_fast")
    parser.add_argument("--frames", type=int, default=600, help="frames per video clip")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=20, help="live: readings per setting")
    parser.add_argument("--port", type=int, default=7873)
    parser.add_argument("--no-live", action="store_true", help="skip the browser part")
    args = parser.parse_args()
    video_files(args.model, args.repeats, args.frames)
    if not args.no_live:
        live(args.model, args.seconds, args.port)


if __name__ == "__main__":
    main()
