"""cifar_cnn.classifier: CifarClassifier predicts from anything, saves in Hub layout and reloads
exactly."""

import json
import subprocess
import sys

import h5py
import keras
import numpy as np
import pytest

from cifar_cnn.classifier import CifarClassifier
from cifar_cnn.data.cifar10 import REPO_ROOT, SLICE_PATH
from cifar_cnn.models import get_recipe
from training.train import train


@pytest.mark.slow
def test_train_save_reload_gives_identical_predictions(slice_data, tmp_path):
    # The flagship's architecture, narrower: the same layers (ScaledBias too), less work. The
    # other architectures' save and reload are checked on their shipped folders
    # (test_shipped_models), and seed_cnn's training pipeline by the `trained_seed_cnn` fixture.
    recipe = get_recipe("resnet_fast", epochs=1, batch_size=250)
    recipe = recipe.replace(model_options={**recipe.model_options, "widths": (32, 64, 64)})
    result = train(recipe, slice_data, tmp_path / "run", verbose=0)
    assert len(result.state.history) == 1 and np.isfinite(result.state.history[0]["loss"])
    trained = CifarClassifier(result.model, config={"architecture": "resnet_fast"})
    in_memory = trained.predict(slice_data.x_test)

    trained.save_pretrained(tmp_path / "model")
    reloaded = CifarClassifier.from_pretrained(tmp_path / "model")

    np.testing.assert_array_equal(reloaded.predict(slice_data.x_test), in_memory)
    # The eager call agrees to float32 rounding: predict runs a compiled graph, which may fuse
    # a BatchNorm and the ScaledBias after it (resnet_fast's faster-learning biases) differently.
    direct = keras.ops.convert_to_numpy(result.model(slice_data.x_test, training=False))
    np.testing.assert_allclose(in_memory, direct, rtol=0, atol=1e-6)


def test_saved_folder_is_in_keras_layout_with_our_config_beside_it(trained_seed_cnn):
    names = {p.name for p in trained_seed_cnn.iterdir()}
    expected = {"config.json", "metadata.json", "model.weights.h5", "README.md", "metrics.json"}
    plots = {"confusion_matrix.png", "learning_curves.png", "per_class.png", "reliability.png"}
    assert expected | plots <= names
    config = json.loads((trained_seed_cnn / "config.json").read_text())
    assert config["architecture"] == "seed_cnn"
    assert config["class_names"][3] == "cat"
    assert config["input"]["dtype"] == "uint8"
    assert config["training"]["recipe"]["epochs"] == 1
    assert {"keras", "tensorflow", "cifar_cnn"} <= set(config["versions"])
    # Keras's own model definition shares the file: what plain keras.saving.load_model reads.
    assert config["class_name"] == "Functional" and config["registered_name"] == "Functional"
    assert "model.keras" not in names
    with h5py.File(trained_seed_cnn / "model.weights.h5") as h5:
        assert "optimizer" not in h5 or len(h5["optimizer"].get("vars", {})) == 0


def test_model_card_has_model_index_and_measured_accuracy(trained_seed_cnn):
    card = (trained_seed_cnn / "README.md").read_text()
    metrics = json.loads((trained_seed_cnn / "metrics.json").read_text())
    accuracy = metrics["plain"]["accuracy"]
    assert card.startswith("---\n") and "model-index:" in card
    assert f"value: {round(accuracy, 4)}" in card
    assert f"{100 * accuracy:.2f}%" in card
    assert "pytest fixture" in card  # the reproducing command
    assert "| cat |" in card and "94.2%" in card
    assert "expected calibration error after temperature scaling" in card
    assert "- uoft-cs/cifar10" in card and "## Citations" in card and "http" not in card


def test_a_card_rendered_for_a_repo_names_it_and_sources_its_results(trained_seed_cnn):
    from huggingface_hub import ModelCard

    from cifar_cnn.report.model_card import render_model_card

    classifier = CifarClassifier.from_pretrained(trained_seed_cnn)
    card = render_model_card(classifier.config, classifier.metrics, repo_id="me/cifar10-seed")
    assert 'from_pretrained("me/cifar10-seed")' in str(card)
    results = ModelCard(str(card)).data.eval_results
    assert {r.dataset_type for r in results} == {"uoft-cs/cifar10"}
    assert {r.source_url for r in results} == {
        "https://huggingface.co/me/cifar10-seed/blob/main/metrics.json"
    }


def test_a_card_for_another_seed_of_a_recipe_says_so_in_its_title(trained_seed_cnn):
    from cifar_cnn.report.model_card import render_model_card

    classifier = CifarClassifier.from_pretrained(trained_seed_cnn)
    assert "# CIFAR-10 seed_cnn, seed" not in str(render_model_card(classifier.config, None))
    classifier.config["training"]["recipe"]["seed"] = 3
    card = str(render_model_card(classifier.config, None))
    assert "# CIFAR-10 seed_cnn, seed 3\n" in card and "run again from seed 3" in card
    assert "the same validation images" in card

    classifier.config["training"]["recipe"]["validation_fraction"] = 0.04
    card = str(render_model_card(classifier.config, None))
    assert "validation_fraction 0.04 (the recipe's 0.1)" in card
    assert "and another validation split" in card


def test_a_card_says_when_its_run_computed_in_bfloat16(trained_seed_cnn):
    from cifar_cnn.report.model_card import render_model_card

    classifier = CifarClassifier.from_pretrained(trained_seed_cnn)
    classifier.config["training"]["precision"] = "float32"
    assert "bfloat16" not in str(render_model_card(classifier.config, None)).split("## Use it")[0]
    classifier.config["training"]["precision"] = "mixed_bfloat16"
    card = str(render_model_card(classifier.config, None))
    assert "# CIFAR-10 seed CNN (the original design), trained in bfloat16\n" in card
    assert "seed_cnn's recipe with " in card  # the fixture's short run changes it too
    assert "bfloat16 arithmetic (its weights kept and saved in float32)" in card
    classifier.config["training"]["recipe"]["seed"] = 3
    card = str(render_model_card(classifier.config, None))
    assert "# CIFAR-10 seed_cnn, seed 3, trained in bfloat16\n" in card


def test_recipe_changes_name_what_a_run_changed_from_its_registered_recipe():
    from cifar_cnn.models.registry import get_recipe
    from cifar_cnn.report.model_card import recipe_changes

    registered = get_recipe("mobilenet_transfer").to_dict()
    run = get_recipe(
        "mobilenet_transfer", epochs=15, seed=1, teacher="models/ensemble",
        model_options={"input_size": 160, "backbone_weights": "/some/file.h5"},
    ).to_dict()  # fmt: skip
    run["flip_tta"] = True  # a setting older recipes had: not a change
    assert recipe_changes(run, registered) == [
        "epochs 15 (the recipe's 12)",
        "input_size 160 (the recipe's 128)",
    ]  # the seed, the teacher and a weights file's path are said elsewhere or not at all
    assert recipe_changes(registered, registered) == []


def test_a_card_for_a_reshaped_network_names_the_change_in_its_title(trained_seed_cnn):
    from cifar_cnn.models.resnet_fast import build_resnet_fast
    from cifar_cnn.report.model_card import architecture_changes, render_model_card

    assert architecture_changes({"widths": [128, 384, 384]}, build_resnet_fast) == {
        "widths": ([128, 384, 384], [64, 256, 256])
    }
    assert architecture_changes({"widths": [64, 256, 256]}, build_resnet_fast) == {}
    assert architecture_changes({"whitening_images": "/some/file.npy"}, build_resnet_fast) == {}

    classifier = CifarClassifier.from_pretrained(trained_seed_cnn)
    classifier.config["training"]["recipe"]["model_options"] = {"filters": [64, 128, 256]}
    card = str(render_model_card(classifier.config, None))
    assert "# CIFAR-10 seed_cnn, filters [64, 128, 256]\n" in card
    assert "filters [64, 128, 256] (the default [32, 64, 128])" in card
    classifier.config["training"]["recipe"]["seed"] = 3
    card = str(render_model_card(classifier.config, None))
    assert "# CIFAR-10 seed_cnn, filters [64, 128, 256], seed 3\n" in card


def test_temperature_fitted_on_validation_scales_predict_but_not_the_ranking(
    trained_seed_cnn, slice_data
):
    classifier = CifarClassifier.from_pretrained(trained_seed_cnn)
    calibration = classifier.config["calibration"]
    assert calibration["temperature"] > 0 and "validation" in calibration["fitted_on"]
    raw = classifier.predict(slice_data.x_test[:20], calibrated=False)
    scaled = classifier.predict(slice_data.x_test[:20])
    assert not np.allclose(raw, scaled)
    np.testing.assert_array_equal(raw.argmax(axis=1), scaled.argmax(axis=1))
    np.testing.assert_allclose(classifier.calibrate(raw), scaled, rtol=1e-6)


def test_predict_shapes_and_classify(trained_seed_cnn, slice_data):
    classifier = CifarClassifier.from_pretrained(trained_seed_cnn)
    assert classifier.predict(slice_data.x_test[0]).shape == (10,)
    assert classifier.predict(slice_data.x_test[:3]).shape == (3, 10)
    assert classifier.predict([slice_data.x_test[0]]).shape == (1, 10)
    top = classifier.classify("examples/test0000_cat.png", top_k=3)
    assert len(top) == 3 and list(top.values()) == sorted(top.values(), reverse=True)
    images = slice_data.x_test[:3]
    tta = classifier.predict(images, flip_tta=True, calibrated=False)
    flipped = classifier.predict(images[:, :, ::-1], calibrated=False)
    plain = classifier.predict(images, calibrated=False)
    np.testing.assert_allclose(tta, (plain + flipped) / 2, rtol=1e-6)


def test_a_corrupted_model_file_is_detected(trained_seed_cnn, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained_seed_cnn, copy)
    with open(copy / "model.weights.h5", "r+b") as file:
        file.truncate(1000)
    with pytest.raises(ValueError, match="checksum mismatch"):
        CifarClassifier.from_pretrained(copy)


def test_plain_keras_loads_the_shipped_flagship_without_cifar_cnn(slice_data, tmp_path):
    """The folder is Keras's own layout with no custom layer left: a process that never imports
    cifar_cnn loads it and gives exactly our uncalibrated probabilities."""
    flagship = REPO_ROOT / "models" / "resnet_fast"
    code = (
        "import sys, numpy as np, keras\n"
        "model = keras.saving.load_model(sys.argv[1])\n"
        "images = np.load(sys.argv[2])['x_test'][:50]\n"
        "np.save(sys.argv[3], model.predict(images, verbose=0))\n"
        "assert not [m for m in sys.modules if m.startswith('cifar_cnn')]\n"
    )
    out = tmp_path / "probabilities.npy"
    subprocess.run(
        [sys.executable, "-c", code, str(flagship), str(SLICE_PATH), str(out)], check=True
    )
    classifier = CifarClassifier.from_pretrained(flagship)
    ours = classifier.predict(slice_data.x_test[:50], calibrated=False)
    np.testing.assert_array_equal(np.load(out), ours)


def test_a_folder_in_the_legacy_layout_still_loads(trained_seed_cnn, slice_data, tmp_path):
    """Folders and repos saved before the Keras layout hold our config.json beside a zipped
    model.keras checked by `model_sha256`."""
    from conftest import save_legacy_folder

    current = CifarClassifier.from_pretrained(trained_seed_cnn)
    legacy = save_legacy_folder(current, tmp_path / "legacy")

    loaded = CifarClassifier.from_pretrained(legacy)
    np.testing.assert_array_equal(
        loaded.predict(slice_data.x_test), current.predict(slice_data.x_test)
    )
    (legacy / "model.keras").write_bytes(b"PK\x03\x04 not the saved model")
    with pytest.raises(ValueError, match="model.keras: checksum mismatch"):
        CifarClassifier.from_pretrained(legacy)


def test_loading_refuses_folders_without_a_model(tmp_path):
    with pytest.raises(ValueError, match="not a CifarClassifier folder"):
        CifarClassifier.load_folder(tmp_path)


def test_models_with_arbitrary_code_do_not_load(tmp_path, slice_data):
    inputs = keras.Input((32, 32, 3), dtype="uint8")
    outputs = keras.layers.Lambda(lambda x: keras.ops.cast(x, "float32")[:, 0, 0, :1] * 0)(inputs)
    outputs = keras.layers.Dense(10, activation="softmax")(outputs)
    unsafe = CifarClassifier(keras.Model(inputs, outputs), config={"architecture": "lambda"})
    unsafe.save_pretrained(tmp_path / "unsafe")
    with pytest.raises(ValueError, match="unsafe|Lambda|safe_mode"):
        CifarClassifier.from_pretrained(tmp_path / "unsafe")


def test_a_registry_name_loads_the_shipped_model():
    by_name = CifarClassifier.from_pretrained("resnet_fast")
    assert by_name.source_dir == REPO_ROOT / "models" / "resnet_fast"
    assert by_name.config["architecture"] == "resnet_fast"


def test_a_missing_folder_is_named_in_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no such model folder, and not a Hub repo id"):
        CifarClassifier.from_pretrained(tmp_path / "nowhere" / "model")


def test_top_classes_are_the_k_most_likely_in_order(trained_seed_cnn):
    classifier = CifarClassifier.from_pretrained(trained_seed_cnn)
    probabilities = np.linspace(0.0, 1.0, 10)
    assert list(classifier.top_classes(probabilities, 3)) == ["truck", "ship", "horse"]
    for bad in (0, 11, 2.5, True):
        with pytest.raises(ValueError, match="top_k must be"):
            classifier.top_classes(probabilities, bad)
