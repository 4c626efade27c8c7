"""app.py in a real browser: headless Chromium (Debian's package) driven by Playwright.

Each tab is used as a visitor would at a desktop's 1400x1000, and every tab is opened again at a
phone's 390x844; a screenshot of each is saved to $APP_SCREENSHOTS (default: a pytest temporary
folder) for people to look at.
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
COFFEE = str(REPO_ROOT / "examples" / "outliers" / "photo_coffee.jpg")
TIMEOUT_MS = 60_000
DESKTOP = {"width": 1400, "height": 1000}
PHONE = {"width": 390, "height": 844}
TABS = ["Classify", "Ensemble", "Grad-CAM", "Compare", "Robustness", "Batch", "Video", "Live",
        "History", "Models"]  # fmt: skip


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
def app_page(
    playwright, app_url: str, flags: tuple[str, ...] = (), permissions=(), viewport=DESKTOP
):
    """A page showing the app, in a Chromium launched with `flags` and granted `permissions`."""
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS + list(flags)
    )
    try:
        context = browser.new_context(viewport=viewport)
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


def test_an_everyday_photo_gets_a_banner_above_its_label(page, screenshots):
    open_tab(page, "Classify")
    upload(page, "classify-image", COFFEE)
    click(page, "Classify")
    banner = page.locator("#classify-banner")
    sync_api.expect(banner).to_contain_text("This may not be one of the ten classes")
    sync_api.expect(banner).to_contain_text("likely meaningless")
    label = page.locator("#classify-label")
    assert banner.bounding_box()["y"] < label.bounding_box()["y"]  # read before the label
    sync_api.expect(label).to_be_visible()  # the guess stays available
    page.screenshot(path=screenshots / "1-classify-outlier.png", full_page=True)
    upload(page, "classify-image", SHIP)  # a CIFAR-10 picture: the banner goes
    click(page, "Classify")
    sync_api.expect(page.get_by_test_id("label-output-value").first).to_have_text("ship")
    sync_api.expect(banner).to_be_hidden()


def test_an_error_stays_on_screen_and_names_the_accepted_formats(page, screenshots, tmp_path):
    drawing = tmp_path / "drawing.svg"
    drawing.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>')
    open_tab(page, "Classify")
    upload(page, "classify-image", str(drawing))
    page.locator("#classify-image img[src^='data:image/svg']").wait_for()  # shown, uploaded
    click(page, "Classify")
    toast = page.get_by_test_id("toast-body").filter(has_text="accepted: PNG, JPEG")
    toast.wait_for()
    page.wait_for_timeout(10_500)  # Gradio's own toasts fade after 10 s
    sync_api.expect(toast).to_be_visible()
    page.screenshot(path=screenshots / "1-classify-error.png", full_page=True)
    toast.get_by_test_id("toast-close").click()  # closed by the visitor, not by a timer
    sync_api.expect(toast).to_be_hidden()


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
    sync_api.expect(page.locator("#ensemble-table")).to_contain_text("runner-up")
    page.screenshot(path=screenshots / "2-ensemble.png", full_page=True)


def test_every_listed_grad_cam_layer_answers_with_a_colour_scale(page, screenshots):
    open_tab(page, "Grad-CAM")
    upload(page, "gradcam-image", SHIP)
    layer = page.locator("#cam-layer input")
    layer.click()
    # (the chosen option is shown with a tick before its name)
    options = [o.split("\n")[-1].strip() for o in page.get_by_role("option").all_inner_texts()]
    page.keyboard.press("Escape")
    assert len(options) >= 3 and "the default" in options[0], options
    for option in options:
        layer.click()
        layer.fill(option)  # typing filters the list to this option; Enter chooses it
        page.keyboard.press("Enter")
        click(page, "Explain")
        path = option.split("(")[1].split(",")[0].rstrip(")")
        caption = page.locator("#gradcam-caption")
        sync_api.expect(caption).to_contain_text(f"at layer {path};", timeout=TIMEOUT_MS)
    sync_api.expect(page.locator("#gradcam-scale img")).to_be_visible()
    page.screenshot(path=screenshots / "3-gradcam.png", full_page=True)


def test_compare_tab_shows_one_panel_per_model(page, screenshots):
    open_tab(page, "Compare")
    upload(page, "compare-image", SHIP)
    click(page, "Compare")
    page.get_by_text("resnet_fast: ship").first.wait_for()
    page.screenshot(path=screenshots / "4-compare.png", full_page=True)


def test_batch_tab_fills_the_table_thumbnails_and_csv(page, screenshots):
    open_tab(page, "Batch")
    upload(page, "batch-files", *([SHIP, CAT, COFFEE] * 8))  # 24 files
    button = page.locator("#batch-button")
    assert button.bounding_box()["y"] + button.bounding_box()["height"] < DESKTOP["height"]
    click(page, "Classify all")
    page.get_by_role("gridcell", name="test0000_cat.png").first.wait_for()
    page.get_by_role("cell", name=re.compile(r"predictions-[0-9a-f]{12}\.csv")).wait_for()
    sync_api.expect(page.locator("#batch-table")).to_contain_text("may not be one of")
    sync_api.expect(page.locator("#batch-thumbnails img")).to_have_count(24)
    page.screenshot(path=screenshots / "5-batch.png", full_page=True)


def test_history_tab_lists_flags_exports_and_clears_this_sessions_predictions(page, screenshots):
    open_tab(page, "History")
    # The classifications and the vote made by the earlier tests of this browser session.
    table = page.locator("#history")
    page.get_by_role("gridcell", name="resnet_fast", exact=True).first.wait_for()
    sync_api.expect(table).to_contain_text("photo_coffee.jpg")
    sync_api.expect(table).to_contain_text("may not be one of")
    sync_api.expect(table).to_contain_text("ensemble")
    page.locator("#history-gallery img").first.wait_for()
    sync_api.expect(page.locator("#history-csv")).to_contain_text(".csv")
    page.screenshot(path=screenshots / "6-history.png", full_page=True)
    click(page, "Clear the history")
    sync_api.expect(page.locator("#history-gallery img")).to_have_count(0)
    sync_api.expect(page.get_by_role("gridcell", name="resnet_fast", exact=True)).to_have_count(0)


def test_models_tab_shows_every_plot_whole(page, screenshots):
    open_tab(page, "Models")
    page.get_by_role("heading", name="CIFAR-10 resnet_fast").wait_for()
    plots = page.locator("#model-plots img")
    plots.first.wait_for()
    for index in range(plots.count()):  # images load as they come into view
        plots.nth(index).scroll_into_view_if_needed()
    page.wait_for_function(
        "() => [...document.querySelectorAll('#model-plots img')].every(i => i.naturalWidth)"
    )
    shapes = plots.evaluate_all(
        "images => images.map(i => [i.naturalWidth / i.naturalHeight,"
        " i.getBoundingClientRect().width / i.getBoundingClientRect().height])"
    )
    assert len(shapes) >= 4
    for natural, shown in shapes:  # each plot's box keeps its aspect ratio: nothing cropped
        assert abs(shown / natural - 1) < 0.03, shapes
    scrolls = page.locator("#model-plots").evaluate(
        "g => [g, ...g.querySelectorAll('*')].filter(e => e.scrollHeight > e.clientHeight + 2"
        " && getComputedStyle(e).overflowY.match(/auto|scroll/))"
        ".map(e => e.className + ' ' + e.scrollHeight + '>' + e.clientHeight)"
    )
    assert scrolls == []  # no inner scroll hides a plot
    page.screenshot(path=screenshots / "7-models.png", full_page=True)


def test_robustness_tab_shows_the_clean_and_corrupted_views_and_predictions(page, screenshots):
    open_tab(page, "Robustness")
    upload(page, "robust-image", SHIP)
    click(page, "Corrupt and classify")
    page.get_by_text("on the corrupted view").wait_for()
    sync_api.expect(page.get_by_text("Clean prediction")).to_be_visible()
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
    # Gradio's webcam sends no frame until its video has one: record once the camera plays (on a
    # busy machine the fake camera can take a while to start).
    page.wait_for_function(
        "() => (document.querySelector('#live-camera video') || {}).videoWidth > 0"
    )
    page.locator("#live-camera button", has_text="Record").click()
    label = page.locator("#live-label").get_by_test_id("label-output-value")
    try:
        label.wait_for()
    except sync_api.TimeoutError:  # say what the page showed instead
        page.screenshot(path=screenshots / "9-live-no-label.png", full_page=True)
        live = page.locator("#live-camera").inner_text(), page.locator("#live-fps").inner_text()
        raise AssertionError(f"no live label; camera and frame-rate panes show {live}") from None
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


@pytest.fixture(scope="module")
def phone_page(playwright, app_url):
    with app_page(playwright, app_url, viewport=PHONE) as page:
        yield page


def test_at_phone_width_every_tab_is_reachable_and_the_answer_comes_into_view(
    phone_page, screenshots
):
    page = phone_page
    for number, name in enumerate(TABS):
        tab = page.get_by_role("tab", name=name, exact=True)
        sync_api.expect(tab).to_be_visible()  # on the page, not folded into a "..." menu
        box = tab.bounding_box()
        assert 0 <= box["x"] and box["x"] + box["width"] <= PHONE["width"], (name, box)
        tab.click()
        page.screenshot(path=screenshots / f"phone-{number}-{name.lower()}.png")
    open_tab(page, "Classify")
    upload(page, "classify-image", COFFEE)
    click(page, "Classify")
    banner = page.locator("#classify-banner")
    sync_api.expect(banner).to_be_visible()
    sync_api.expect(banner).to_be_in_viewport()  # scrolled to: the answer is not below the fold
    page.screenshot(path=screenshots / "phone-classify-outlier.png")
