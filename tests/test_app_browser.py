"""app.py in a real browser: headless Chromium (Debian's package) driven by Playwright.

Each tab is used as a visitor would, and a screenshot of it is saved to $APP_SCREENSHOTS (default:
a pytest temporary folder) for people to look at.
"""

import contextlib
import os
import re
from pathlib import Path

import pytest

from cifar_cnn.data.cifar10 import REPO_ROOT

pytestmark = pytest.mark.slow

sync_api = pytest.importorskip("playwright.sync_api", reason="needs Playwright for Python")

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SHIP = str(REPO_ROOT / "examples" / "test0001_ship.png")
CAT = str(REPO_ROOT / "examples" / "test0000_cat.png")
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("APP_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def playwright():
    """One Playwright per test process: its sync API cannot run twice in one thread."""
    if not CHROMIUM.is_file():
        pytest.skip(
            f"needs Chromium at {CHROMIUM} (Debian package 'chromium'; .ci/run installs it)"
        )
    with sync_api.sync_playwright() as playwright:
        yield playwright


@contextlib.contextmanager
def app_page(playwright, app_url: str, flags: tuple[str, ...] = (), permissions=()):
    """A page showing the app, in a Chromium launched with `flags` and granted `permissions`."""
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS + list(flags)
    )
    try:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.grant_permissions(list(permissions))
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(app_url)
        page.get_by_role("heading", name="CIFAR-10 explorer").wait_for()
        yield page
    finally:
        browser.close()


@pytest.fixture(scope="module")
def page(playwright, app_url):
    with app_page(playwright, app_url) as page:
        yield page


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


def upload(page, elem_id: str, *files: str) -> None:
    page.locator(f"#{elem_id} input[type=file]").set_input_files(list(files))


def click(page, button: str) -> None:
    page.get_by_role("button", name=button, exact=True).click()


def test_upload_and_classify_shows_the_label_on_the_page(page, screenshots):
    open_tab(page, "Classify")
    upload(page, "classify-image", SHIP)
    click(page, "Classify")
    label = page.get_by_test_id("label-output-value").first
    sync_api.expect(label).to_have_text("ship", timeout=TIMEOUT_MS)
    page.locator("#model-view img").first.wait_for()
    page.screenshot(path=screenshots / "1-classify.png", full_page=True)


def test_clicking_an_example_classifies_it_at_once(page):
    open_tab(page, "Classify")
    page.locator("img[src*='test0000_cat']").first.click()  # no button pressed
    label = page.get_by_test_id("label-output-value").first
    sync_api.expect(label).to_have_text("cat", timeout=TIMEOUT_MS)


def test_a_copied_link_reopens_the_page_with_the_result(page, app_url):
    open_tab(page, "Classify")
    upload(page, "classify-image", SHIP)
    click(page, "Classify")
    sync_api.expect(page.get_by_test_id("label-output-value").first).to_have_text("ship")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=app_url)
    page.get_by_role("button", name="Copy a link to this result").click()
    link = ""
    for _ in range(50):  # the button fetches the link, then copies it
        link = page.evaluate("navigator.clipboard.readText()")
        if "deep_link=" in link:
            break
        page.wait_for_timeout(100)
    assert link.startswith(app_url) and "deep_link=" in link, link
    shared = page.context.new_page()
    try:
        shared.goto(link)  # no upload, no click: the result is on the page
        label = shared.get_by_test_id("label-output-value").first
        sync_api.expect(label).to_have_text("ship", timeout=TIMEOUT_MS)
    finally:
        shared.close()


def test_ensemble_tab_shows_each_models_vote(page, screenshots):
    open_tab(page, "Ensemble")
    upload(page, "ensemble-image", SHIP)
    click(page, "Vote")
    page.get_by_text("Soft vote:").wait_for()
    sync_api.expect(page.get_by_role("gridcell", name="resnet_fast", exact=True)).to_be_visible()
    page.screenshot(path=screenshots / "2-ensemble.png", full_page=True)


def test_gradcam_tab_shows_the_heatmap_and_its_caption(page, screenshots):
    open_tab(page, "Grad-CAM")
    upload(page, "gradcam-image", SHIP)
    click(page, "Explain")
    page.get_by_text("the model predicts").wait_for()
    page.locator("#gradcam-overlay img").first.wait_for()
    page.screenshot(path=screenshots / "3-gradcam.png", full_page=True)


def test_compare_tab_shows_one_panel_per_model(page, screenshots):
    open_tab(page, "Compare")
    upload(page, "compare-image", SHIP)
    click(page, "Compare")
    page.get_by_text("resnet_fast: ship").first.wait_for()
    page.screenshot(path=screenshots / "4-compare.png", full_page=True)


def test_batch_tab_fills_the_table_and_offers_the_csv(page, screenshots):
    open_tab(page, "Batch")
    upload(page, "batch-files", SHIP, CAT)
    click(page, "Classify all")
    page.get_by_role("gridcell", name="test0000_cat.png").first.wait_for()
    page.get_by_role("cell", name=re.compile(r"predictions-[0-9a-f]{12}\.csv")).wait_for()
    page.screenshot(path=screenshots / "5-batch.png", full_page=True)


def test_history_tab_lists_this_sessions_predictions(page, screenshots):
    open_tab(page, "History")
    # The classification made in the first test of this browser session.
    page.get_by_role("gridcell", name="resnet_fast", exact=True).first.wait_for()
    page.locator("#history-gallery img").first.wait_for()
    page.screenshot(path=screenshots / "6-history.png", full_page=True)


def test_models_tab_renders_the_model_card(page, screenshots):
    open_tab(page, "Models")
    page.get_by_role("heading", name="CIFAR-10 resnet_fast").wait_for()
    page.screenshot(path=screenshots / "7-models.png", full_page=True)


def test_robustness_tab_shows_the_corrupted_view_and_its_prediction(page, screenshots):
    open_tab(page, "Robustness")
    upload(page, "robust-image", SHIP)
    click(page, "Corrupt and classify")
    page.get_by_text("on the corrupted view").wait_for()
    page.screenshot(path=screenshots / "8-robustness.png", full_page=True)


def test_video_tab_shows_the_timeline_the_changes_and_the_labelled_video(
    page, screenshots, tmp_path
):
    import numpy as np
    from PIL import Image

    from cifar_cnn.video import slideshow, write_video

    pictures = [np.asarray(Image.open(path)) for path in (CAT, SHIP)]
    clip = write_video(tmp_path / "cat-then-ship.webm", slideshow(pictures, 10), fps=10)
    open_tab(page, "Video")
    upload(page, "video-input", str(clip))
    click(page, "Classify the video")
    summary = page.locator("#video-summary")
    sync_api.expect(summary).to_contain_text("0.0-1.0 s cat; 1.0-2.0 s ship", timeout=TIMEOUT_MS)
    page.locator("#video-timeline img").first.wait_for()
    page.locator("#video-output video").first.wait_for()
    page.screenshot(path=screenshots / "8-video.png", full_page=True)


@pytest.fixture(scope="module")
def camera_page(playwright, app_url, tmp_path_factory):
    """A browser whose camera films shipped test images: a cat for 3 s, then a ship for 3 s."""
    import numpy as np
    from PIL import Image

    from cifar_cnn.video import slideshow, write_y4m

    pictures = [np.asarray(Image.open(path)) for path in (CAT, SHIP)]
    clip = write_y4m(
        tmp_path_factory.mktemp("camera") / "cat-then-ship.y4m",
        list(slideshow(pictures, frames_each=30, size=256)),
        fps=10,
    )
    camera = [
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={clip}",
    ]
    with app_page(playwright, app_url, tuple(camera), ["camera"]) as page:
        yield page


def test_live_tab_follows_the_camera_and_shows_the_frame_rate(camera_page, screenshots):
    import time

    page = camera_page
    open_tab(page, "Live")
    page.get_by_role("button", name="Click to Access Webcam").click()
    page.locator("#live-camera button", has_text="Record").click()
    label = page.locator("#live-label").get_by_test_id("label-output-value")
    label.wait_for()
    seen, rates = set(), []
    deadline = time.time() + 30
    while time.time() < deadline and not ({"cat", "ship"} <= seen and len(rates) >= 5):
        seen.add(label.inner_text().strip())
        rate = re.search(r"([0-9.]+) frames per second", page.locator("#live-fps").inner_text())
        if rate:
            rates.append(float(rate.group(1)))
        time.sleep(0.2)
    page.screenshot(path=screenshots / "9-live.png", full_page=True)
    assert {"cat", "ship"} <= seen, f"labels seen: {seen}"  # the label follows the clip
    assert rates and max(rates) > 1, rates  # the served frame rate is shown
