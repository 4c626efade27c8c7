"""app.py in a real browser: headless Chromium (Debian's package) driven by Playwright.

Each tab is used as a visitor would, and a screenshot of it is saved to $APP_SCREENSHOTS (default:
a pytest temporary folder) for people to look at.
"""

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
def page(app_url):
    if not CHROMIUM.is_file():
        pytest.skip(
            f"needs Chromium at {CHROMIUM} (Debian package 'chromium'; .ci/run installs it)"
        )
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(app_url)
        page.get_by_role("heading", name="CIFAR-10 explorer").wait_for()
        try:
            yield page
        finally:
            browser.close()


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
