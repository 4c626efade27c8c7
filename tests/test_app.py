"""app.py through its API: the app launched in-process and called with gradio_client."""

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from cifar_cnn.data.cifar10 import REPO_ROOT
from webapp import events, serving

SHIP = str(REPO_ROOT / "examples" / "test0001_ship.png")
PULLOVER = str(REPO_ROOT / "examples" / "outliers" / "fashion_mnist_test0001_pullover.png")


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


@pytest.fixture(scope="module")
def served_models():
    """The flagship loaded directly through the library, to compare the API's answers with."""
    return serving.load_models([str(REPO_ROOT / "models" / "resnet_fast")])


def test_classify_labels_the_ship_example(client):
    labels, view, notice = client.predict(handle_file(SHIP), "resnet_fast", 3, api_name="/classify")
    assert labels["label"] == "ship" and len(labels["confidences"]) == 3
    with Image.open(view) as picture:
        assert picture.size == (256, 256)
    assert notice == ""


def test_concurrent_clients_with_the_same_picture_all_get_complete_answers(app_url):
    # Identical outputs produced at once once raced in Gradio's cache (truncated downloads).
    def classify_repeatedly(_):
        client = Client(app_url, verbose=False)
        views = []
        for _ in range(6):
            labels, view, _ = client.predict(handle_file(SHIP), "resnet_fast", 1,
                                             api_name="/classify")  # fmt: skip
            with Image.open(view) as picture:
                picture.load()  # a truncated file fails here
                views.append((labels["label"], picture.size))
        return views

    with ThreadPoolExecutor(8) as pool:
        answers = [a for views in pool.map(classify_repeatedly, range(8)) for a in views]
    assert answers == [("ship", (256, 256))] * 48


def test_ensemble_returns_one_vote_per_loaded_model(client):
    table, soft, summary = client.predict(handle_file(SHIP), api_name="/ensemble")
    assert [row[0] for row in table["data"]] == ["resnet_fast", "model"]
    assert soft["label"] == "ship"  # the flagship's 0.98 outweighs the tiny model's doubt
    assert "Soft vote" in summary


def test_gradcam_returns_a_non_uniform_heat_image(client):
    overlay, caption = client.predict(
        handle_file(SHIP), "resnet_fast", "predicted", "", "gradcam", 0.6, "jet",
        api_name="/gradcam",
    )  # fmt: skip
    with Image.open(overlay) as picture:
        pixels = np.asarray(picture.convert("RGB"))
    assert pixels.shape == (256, 256, 3) and pixels.std() > 10
    assert "Grad-CAM of **ship**" in caption


def test_compare_shows_each_chosen_model(client):
    gallery = client.predict(handle_file(SHIP), ["resnet_fast", "model"], api_name="/compare")
    assert len(gallery) == 2 and gallery[0]["caption"].startswith("resnet_fast: ship")


def test_models_endpoint_renders_the_card(client):
    card, plots = client.predict("resnet_fast", api_name="/models")
    assert card.startswith("# CIFAR-10 resnet_fast") and len(plots) >= 4


def test_classify_warns_for_a_fashion_mnist_picture_and_not_for_a_cifar_ship(client):
    _, _, notice = client.predict(handle_file(PULLOVER), "resnet_fast", 3, api_name="/classify")
    assert notice.startswith("This may not be one of the 10 classes: its energy score")
    _, _, notice = client.predict(handle_file(SHIP), "resnet_fast", 3, api_name="/classify")
    assert notice == ""


def test_robustness_returns_the_corrupted_view_prediction_and_heatmap(client):
    view, labels, notice, overlay, caption = client.predict(
        handle_file(SHIP), "resnet_fast", "gaussian_blur", 2, api_name="/robustness"
    )
    for path in (view, overlay):
        with Image.open(path) as picture:
            assert picture.size == (256, 256)
    assert labels["label"] in caption and "corrupted view" in caption


def test_batch_returns_a_table_and_a_csv(client, tmp_path):
    table, csv = client.predict(
        [handle_file(SHIP), handle_file(str(REPO_ROOT / "examples" / "test0000_cat.png"))],
        ["resnet_fast"],
        api_name="/batch",
    )
    assert [row[0] for row in table["data"]] == ["test0001_ship.png", "test0000_cat.png"]
    assert table["data"][0][2] == "ship"
    with open(csv) as file:
        assert file.readline().strip() == "file,model,label,confidence,error"


# --- Every kind of bad or unusual upload, through the API --------------------------------------


def ship_photo(size: int = 128) -> Image.Image:
    """The shipped ship test image, enlarged like a photo (so JPEG coding barely changes it)."""
    with Image.open(SHIP) as picture:
        return picture.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)


def jpeg_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, **options)
    return buffer.getvalue()


def png_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **options)
    return buffer.getvalue()


def exif_rotated_jpeg() -> bytes:
    """The ship stored turned 90 degrees with EXIF orientation 6 ("rotate 90 CW to view")."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return jpeg_bytes(ship_photo().transpose(Image.Transpose.ROTATE_90), exif=exif.tobytes())


def animated_gif() -> bytes:
    frames = [ship_photo(), Image.new("RGB", (128, 128), (0, 255, 0))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def transparent_rgba() -> bytes:
    rgba = ship_photo().convert("RGBA")
    rgba.putalpha(Image.new("L", rgba.size, 255))
    alpha = np.asarray(rgba).copy()
    alpha[:8, :, 3] = 0  # a fully transparent strip along the top
    return png_bytes(Image.fromarray(alpha, "RGBA"))


def sixteen_bit_png() -> bytes:
    gray = np.asarray(ship_photo().convert("L"), dtype=np.uint16) * 257
    return png_bytes(Image.fromarray(gray))


def decompression_bomb() -> bytes:
    return png_bytes(Image.new("1", (20000, 20000)), optimize=True)  # ~60 kB, 400M pixels


PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)
SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32">'
    b'<rect width="32" height="32" fill="blue"/></svg>'
)

# name -> (file contents, the error the API reports, or None when the image must be classified)
UPLOADS = {
    "empty.png": (lambda: b"", "empty file \\(0 bytes\\)"),
    "notes.png": (lambda: b"not a picture at all", "not an image file"),
    "truncated.jpg": (lambda: jpeg_bytes(ship_photo())[:600], "truncated or corrupt"),
    "truncated.png": (lambda: png_bytes(ship_photo())[:2000], "truncated or corrupt"),
    "bomb.png": (decompression_bomb, "image too large"),
    "drawing.svg": (lambda: SVG, "not an image file"),
    "document.pdf": (lambda: PDF, "not an image file"),
    "sixteen_bit.png": (sixteen_bit_png, None),
    "cmyk.jpg": (lambda: jpeg_bytes(ship_photo().convert("CMYK")), None),
    "animated.gif": (animated_gif, None),
    "grayscale.png": (lambda: png_bytes(ship_photo().convert("L")), None),
    "transparent.png": (transparent_rgba, None),
    "exif_rotated.jpg": (exif_rotated_jpeg, None),
}


@pytest.mark.parametrize("name", UPLOADS)
def test_every_upload_is_classified_or_refused_clearly_and_the_server_keeps_serving(
    client, served_models, tmp_path, name
):
    make, error = UPLOADS[name]
    path = tmp_path / name
    path.write_bytes(make())
    if error:
        with pytest.raises(Exception, match=f"^{name}: {error}"):
            client.predict(handle_file(str(path)), "resnet_fast", 3, api_name="/classify")
    else:
        labels, view, _ = client.predict(handle_file(str(path)), "resnet_fast", 3,
                                         api_name="/classify")  # fmt: skip
        # The API decodes exactly as the library does on the same file.
        expected = events.classify(served_models.get("resnet_fast"), str(path), 3)
        assert labels["label"] == max(expected.top, key=expected.top.get)
        if name in ("exif_rotated.jpg", "cmyk.jpg", "animated.gif", "transparent.png"):
            assert labels["label"] == "ship"  # turned upright, colours kept, first frame
    labels, _, _ = client.predict(handle_file(SHIP), "resnet_fast", 3, api_name="/classify")
    assert labels["label"] == "ship"


def test_repeated_bad_uploads_do_not_grow_the_servers_memory(client, tmp_path):
    bomb, truncated = tmp_path / "bomb.png", tmp_path / "truncated.jpg"
    bomb.write_bytes(decompression_bomb())
    truncated.write_bytes(jpeg_bytes(ship_photo())[:600])

    def round_of_uploads():
        for path in (bomb, truncated):
            with pytest.raises(Exception, match="too large|truncated"):
                client.predict(handle_file(str(path)), "resnet_fast", 3, api_name="/classify")
        client.predict(handle_file(SHIP), "resnet_fast", 3, api_name="/classify")

    round_of_uploads()  # warm-up: first-call allocations are not growth
    before = resident_megabytes()
    for _ in range(10):
        round_of_uploads()
    assert resident_megabytes() - before < 50


def resident_megabytes() -> float:
    """This process's resident memory (the app runs in-process)."""
    import os

    pages = int(open("/proc/self/statm").read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_an_upload_over_the_size_limit_is_refused(client, tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(png_bytes(Image.fromarray(
        np.random.default_rng(0).integers(0, 256, (2200, 2200, 3), dtype=np.uint8))))  # fmt: skip
    assert big.stat().st_size > 10 * 2**20
    with pytest.raises(Exception, match="(?i)file.*(too large|exceeds|size)"):
        client.predict(handle_file(str(big)), "resnet_fast", 3, api_name="/classify")


def test_readme_configures_a_gradio_space_for_the_installed_gradio():
    import gradio
    from huggingface_hub.repocard import metadata_load

    space = metadata_load(REPO_ROOT / "README.md")
    assert space["sdk"] == "gradio" and space["sdk_version"] == gradio.__version__
    assert (REPO_ROOT / space["app_file"]).is_file() and space["python_version"] == "3.11"
    assert isinstance(space["models"], list)


@pytest.mark.slow
def test_python_app_py_serves_the_shipped_models_by_default(tmp_path):
    """The quick start's `python app.py`, as a user runs it: no --models, no $CIFAR_MODELS."""
    import os
    import subprocess
    import sys
    import time

    from conftest import free_ports

    (port,) = free_ports()
    env = {k: v for k, v in os.environ.items() if k != serving.MODELS_ENV}
    app = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 120
        while time.time() < deadline and app.poll() is None:
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:
                time.sleep(1)
        else:
            pytest.fail(
                f"app.py did not serve: {app.stdout.read() if app.poll() is not None else ''}"
            )
        card, _ = client.predict("resnet_fast", api_name="/models")
        assert card.startswith("# CIFAR-10 resnet_fast")
    finally:
        app.terminate()
        output = app.communicate(timeout=30)[0]
    assert "Serving: resnet_fast" in output
