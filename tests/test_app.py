"""app.py through its API: the app launched in-process and called with gradio_client."""

import ast
import base64
import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from cifar_cnn.data.cifar10 import CLASS_NAMES, REPO_ROOT
from webapp import events, serving
from webapp.server import MAX_UPLOAD_MB

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
    labels, view, notice = client.predict(
        handle_file(SHIP), "resnet_fast", 3, api_name="/classify_tab"
    )
    assert labels["label"] == "ship" and len(labels["confidences"]) == 3
    with Image.open(view) as picture:
        assert picture.size == (256, 256)
    assert notice == {"__type__": "update", "value": "", "visible": False}  # no banner


def test_classify_tab_shows_a_banner_for_an_everyday_photo(client):
    _, _, notice = client.predict(
        handle_file(REPO_ROOT / "examples" / "outliers" / "photo_coffee.jpg"), "resnet_fast", 3,
        api_name="/classify_tab",
    )  # fmt: skip
    assert notice["visible"] and notice["value"].startswith(
        "### ⚠ This may not be one of the ten classes\nIt looks unlike the photos"
    )


def test_concurrent_clients_with_the_same_picture_all_get_complete_answers(app_url):
    # Identical outputs produced at once once raced in Gradio's cache (truncated downloads).
    def classify_repeatedly(_):
        client = Client(app_url, verbose=False)
        views = []
        for _ in range(6):
            labels, view, _ = client.predict(handle_file(SHIP), "resnet_fast", 1,
                                             api_name="/classify_tab")  # fmt: skip
            with Image.open(view) as picture:
                picture.load()  # a truncated file fails here
                views.append((labels["label"], picture.size))
        return views

    with ThreadPoolExecutor(8) as pool:
        answers = [a for views in pool.map(classify_repeatedly, range(8)) for a in views]
    assert answers == [("ship", (256, 256))] * 48


def test_ensemble_returns_one_vote_per_loaded_model(client):
    table, soft, notice, summary = client.predict(handle_file(SHIP), api_name="/ensemble")
    assert [row[0] for row in table["data"]] == ["resnet_fast", "model"]
    assert table["headers"] == events.ENSEMBLE_COLUMNS
    assert soft["label"] == "ship"  # the flagship's 0.98 outweighs the tiny model's doubt
    assert "Soft vote" in summary and not notice["visible"]


def test_gradcam_returns_a_non_uniform_heat_image(client):
    overlay, caption, scale = client.predict(
        handle_file(SHIP), "resnet_fast", "predicted", "", "gradcam", 0.6, "jet",
        api_name="/gradcam",
    )  # fmt: skip
    with Image.open(overlay) as picture:
        pixels = np.asarray(picture.convert("RGB"))
    assert pixels.shape == (256, 256, 3) and pixels.std() > 10
    assert "Grad-CAM of **ship**" in caption
    with Image.open(scale) as strip:  # the colour scale: jet, blue (none) to red (most)
        left, right = np.asarray(strip.convert("RGB"))[0, [0, -1]].astype(int)
    assert left[2] > left[0] and right[0] > right[2]


def test_compare_shows_each_chosen_model(client):
    gallery = client.predict(handle_file(SHIP), ["resnet_fast", "model"], api_name="/compare")
    assert len(gallery) == 2 and gallery[0]["caption"].startswith("resnet_fast: ship")


def test_models_endpoint_renders_the_card(client):
    card, plots = client.predict("resnet_fast", api_name="/models")
    assert card.startswith("# CIFAR-10 resnet_fast") and len(plots) >= 4


def test_classify_warns_for_a_fashion_mnist_picture_and_not_for_a_cifar_ship(client):
    _, _, notice = client.predict(handle_file(PULLOVER), "resnet_fast", 3, api_name="/classify_tab")
    assert notice["visible"] and "This may not be one of the ten classes" in notice["value"]
    _, _, notice = client.predict(handle_file(SHIP), "resnet_fast", 3, api_name="/classify_tab")
    assert not notice["visible"]


def test_robustness_returns_the_corrupted_view_prediction_and_heatmap(client):
    clean_view, clean, view, labels, notice, overlay, caption = client.predict(
        handle_file(SHIP), "resnet_fast", "gaussian_blur", 2, api_name="/robustness"
    )
    assert clean["label"] == "ship"  # the clean baseline beside the corrupted view
    for path in (clean_view, view, overlay):
        with Image.open(path) as picture:
            assert picture.size == (256, 256)
    assert labels["label"] in caption and "corrupted view" in caption


def test_batch_returns_a_table_and_a_csv(client, tmp_path):
    table, csv, thumbnails = client.predict(
        [handle_file(SHIP), handle_file(str(REPO_ROOT / "examples" / "test0000_cat.png"))],
        ["resnet_fast"],
        api_name="/batch",
    )
    assert [row[0] for row in table["data"]] == ["test0001_ship.png", "test0000_cat.png"]
    assert [t["caption"] for t in thumbnails] == ["test0001_ship.png", "test0000_cat.png"]
    assert table["data"][0][2] == "ship"
    with open(csv) as file:
        assert file.readline().strip() == "file,model,label,confidence,warning,error"


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
    "drawing.svg": (lambda: SVG, r"not an image file this app reads \(accepted: PNG, JPEG, GIF"),
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
            client.predict(handle_file(str(path)), "resnet_fast", 3, api_name="/classify_tab")
    else:
        labels, view, _ = client.predict(handle_file(str(path)), "resnet_fast", 3,
                                         api_name="/classify_tab")  # fmt: skip
        # The API decodes exactly as the library does on the same file.
        expected = events.classify(served_models.get("resnet_fast"), str(path), 3)
        assert labels["label"] == expected.label
        if name in ("exif_rotated.jpg", "cmyk.jpg", "animated.gif", "transparent.png"):
            assert labels["label"] == "ship"  # turned upright, colours kept, first frame
    labels, _, _ = client.predict(handle_file(SHIP), "resnet_fast", 3, api_name="/classify_tab")
    assert labels["label"] == "ship"


def test_repeated_bad_uploads_do_not_grow_the_servers_memory(client, tmp_path):
    bomb, truncated = tmp_path / "bomb.png", tmp_path / "truncated.jpg"
    bomb.write_bytes(decompression_bomb())
    truncated.write_bytes(jpeg_bytes(ship_photo())[:600])

    def round_of_uploads():
        for path in (bomb, truncated):
            with pytest.raises(Exception, match="too large|truncated"):
                client.predict(handle_file(str(path)), "resnet_fast", 3, api_name="/classify_tab")
        client.predict(handle_file(SHIP), "resnet_fast", 3, api_name="/classify_tab")

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


def test_a_phone_sized_photo_is_classified_and_one_over_the_limit_refused(client, tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (2000, 2000, 3), dtype=np.uint8)
    phone, big = tmp_path / "phone.png", tmp_path / "big.png"
    phone.write_bytes(png_bytes(Image.fromarray(noise)))  # 12 MB of picture
    big.write_bytes(os.urandom((MAX_UPLOAD_MB + 1) * 2**20))  # refused for its size alone
    assert 10 * 2**20 < phone.stat().st_size < MAX_UPLOAD_MB * 2**20 < big.stat().st_size
    labels, _, _ = client.predict(handle_file(str(phone)), "resnet_fast", 3,
                                  api_name="/classify_tab")  # fmt: skip
    assert labels["label"] in CLASS_NAMES
    with pytest.raises(Exception, match="(?i)file.*(too large|exceeds|size)"):
        client.predict(handle_file(str(big)), "resnet_fast", 3, api_name="/classify_tab")


def test_readme_configures_a_gradio_space_for_the_installed_gradio():
    import gradio
    from huggingface_hub.repocard import metadata_load

    space = metadata_load(REPO_ROOT / "README.md")
    assert space["sdk"] == "gradio" and space["sdk_version"] == gradio.__version__
    assert (REPO_ROOT / space["app_file"]).is_file() and space["python_version"] == "3.11"
    assert isinstance(space["models"], list)


def mcp_session(url: str, work):
    """Run `work(session)` in a real MCP client session over streamable HTTP."""
    import asyncio

    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async def run():
        async with streamable_http_client(url) as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await work(session)

    return asyncio.run(run())


def data_uri(path: str) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


@pytest.mark.slow
def test_python_app_py_serves_browsers_mcp_clients_and_refuses_what_its_queue_cannot_hold():
    """The quick start's `python app.py`, as a user runs it (no --models, no $CIFAR_MODELS;
    the queue bound lowered to 2 to test it): the page, the MCP tools, and a busy answer for
    callers beyond the queue."""
    import os
    import subprocess
    import sys
    import time

    from conftest import free_ports

    (port,) = free_ports()
    env = {k: v for k, v in os.environ.items() if k != serving.MODELS_ENV}
    app = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port)],
        cwd=REPO_ROOT, env={**env, "CIFAR_QUEUE_SIZE": "2"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 120
        while time.time() < deadline and app.poll() is None:
            try:
                client = Client(url, verbose=False)
                break
            except Exception:
                time.sleep(1)
        else:
            pytest.fail(
                f"app.py did not serve: {app.stdout.read() if app.poll() is not None else ''}"
            )
        card, _ = client.predict("resnet_fast", api_name="/models")
        assert card.startswith("# CIFAR-10 resnet_fast")

        # MCP: three documented tools; classify answers with the label and the warning.
        async def use_tools(session):
            tools = {tool.name: tool for tool in (await session.list_tools()).tools}
            ship = await session.call_tool("classify", {"image": data_uri(SHIP), "top_k": 3})
            pullover = await session.call_tool("classify", {"image": data_uri(PULLOVER)})
            vote = await session.call_tool("vote", {"image": data_uri(SHIP)})
            bad = await session.call_tool("classify", {"image": "data:image/png;base64,AAAA"})
            return tools, ship, pullover, vote, bad

        tools, ship, pullover, vote, bad = mcp_session(url + "gradio_api/mcp/", use_tools)
        assert set(tools) == {"classify", "vote", "explain", "classify_video"}
        for tool in tools.values():
            assert tool.description and tool.inputSchema["properties"]
            for name, argument in tool.inputSchema["properties"].items():
                assert argument.get("description"), f"{tool.name}({name}) is undocumented"
        answer = ast.literal_eval(ship.content[0].text)
        assert not ship.isError and answer["label"] == "ship" and answer["warning"] is None
        assert len(answer["probabilities"]) == 3 and answer["probabilities"]["ship"] > 0.9
        assert ast.literal_eval(vote.content[0].text)["majority_label"] == "ship"
        flagged = ast.literal_eval(pullover.content[0].text)
        assert (
            flagged["out_of_distribution"] and "not be one of the 10 classes" in flagged["warning"]
        )
        assert bad.isError and "not an image file" in bad.content[0].text, bad.content[0].text
        assert "/tmp" not in bad.content[0].text  # no server path in the message

        # 10 callers at once: 2 run, 2 wait, the rest are told at once that the queue is full.
        def call(caller):
            try:
                return caller.predict(handle_file(SHIP), "resnet_fast", 3, api_name="/classify")
            except Exception as error:
                return error

        callers = [Client(url, verbose=False) for _ in range(10)]
        started = time.perf_counter()
        with ThreadPoolExecutor(10) as pool:
            outcomes = list(pool.map(call, callers))
        answered = [o for o in outcomes if isinstance(o, dict) and o["label"] == "ship"]
        busy = [o for o in outcomes if "Queue is full! Please try again." in str(o)]
        assert len(answered) + len(busy) == 10, outcomes  # none lost, none hung
        assert answered and busy and time.perf_counter() - started < 60
        assert (
            client.predict(handle_file(SHIP), "resnet_fast", 3, api_name="/classify")["label"]
            == "ship"
        )
    finally:
        app.terminate()
        output = app.communicate(timeout=30)[0]
    assert "Serving: resnet_fast" in output


@pytest.fixture(scope="module")
def scenes_clip(tmp_path_factory):
    """Shipped test images of known classes, 10 frames each at 10 fps: cat, ship, airplane."""
    from cifar_cnn.video import slideshow, write_video

    names = ["test0000_cat.png", "test0001_ship.png", "test0003_airplane.png"]
    pictures = [np.asarray(Image.open(REPO_ROOT / "examples" / name)) for name in names]
    path = tmp_path_factory.mktemp("video") / "scenes.mp4"
    return write_video(path, slideshow(pictures, frames_each=10), fps=10)


def test_a_video_gets_a_label_per_segment_a_timeline_and_an_annotated_copy(client, scenes_clip):
    timeline, changes, annotated, summary = client.predict(
        handle_file(str(scenes_clip)), "resnet_fast", False, api_name="/video"
    )
    assert "0.0-1.0 s **cat**; 1.0-2.0 s **ship**; 2.0-3.0 s **airplane**" in summary
    assert "30 frames classified (every frame)" in summary
    assert [item["caption"] for item in changes] == ["0.0 s: cat", "1.0 s: ship", "2.0 s: airplane"]
    with Image.open(timeline) as plot:
        assert plot.width > 600
    from cifar_cnn.video import video_info

    video = annotated["video"] if isinstance(annotated, dict) else annotated
    assert video.endswith(".webm") and video_info(video).frame_count == 30  # counted if need be


def test_the_api_classifies_a_video_into_segments(client, scenes_clip):
    answer = client.predict(
        handle_file(str(scenes_clip)), "resnet_fast", api_name="/classify_video"
    )
    assert [(s["start"], s["end"], s["label"]) for s in answer["segments"]] == [
        (0.0, 1.0, "cat"), (1.0, 2.0, "ship"), (2.0, 3.0, "airplane"),
    ]  # fmt: skip
    assert answer["every"] == 1 and len(answer["frames"]) == 30 and answer["flagged"] == 0


def test_bad_videos_get_clear_errors_and_the_next_request_works(client, scenes_clip, tmp_path):
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(scenes_clip.read_bytes()[: scenes_clip.stat().st_size // 2])
    text = tmp_path / "notes.mp4"
    text.write_text("no video here\n" * 100)
    for path in (truncated, text):
        with pytest.raises(Exception, match="cannot be decoded as a video") as error:
            client.predict(handle_file(str(path)), "resnet_fast", False, api_name="/video")
        assert "/tmp" not in str(error.value)
    *_, summary = client.predict(
        handle_file(str(scenes_clip)), "resnet_fast", False, api_name="/video"
    )
    assert "**cat**" in summary
