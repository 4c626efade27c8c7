"""app.py through its API: the app launched in-process and called with gradio_client."""

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from cifar_cnn import service
from cifar_cnn.data import REPO_ROOT

SHIP = str(REPO_ROOT / "examples" / "test0001_ship.png")


@pytest.fixture(scope="module")
def client(trained_seed_cnn):
    import app

    served = service.load_models([str(REPO_ROOT / "models" / "resnet_fast"), str(trained_seed_cnn)])
    demo = app.build_demo(served)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, show_error=True,
                max_file_size=app.MAX_FILE_SIZE)  # fmt: skip
    try:
        yield Client(demo.local_url, verbose=False)
    finally:
        demo.close()


def test_classify_labels_the_ship_example(client):
    labels, view, notice = client.predict(handle_file(SHIP), "resnet_fast", 3, api_name="/classify")
    assert labels["label"] == "ship" and len(labels["confidences"]) == 3
    with Image.open(view) as picture:
        assert picture.size == (256, 256)
    assert notice == ""


def test_ensemble_returns_one_vote_per_loaded_model(client):
    table, soft, summary = client.predict(handle_file(SHIP), api_name="/ensemble")
    assert [row[0] for row in table["data"]] == ["resnet_fast", "model"]
    assert soft["label"] in {"ship", "airplane", "automobile", "truck"} or soft["label"]
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


def test_a_bad_upload_is_a_clear_error_and_the_server_keeps_serving(client, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    with pytest.raises(Exception, match="not an image file|cannot identify image file"):
        client.predict(handle_file(str(text)), "resnet_fast", 3, api_name="/classify")
    labels, _, _ = client.predict(handle_file(SHIP), "resnet_fast", 3, api_name="/classify")
    assert labels["label"] == "ship"


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
