"""cifar_cnn.export and cifar-export: TF Serving SavedModels, TFLite and ONNX files that answer as
the Keras model does, on the shipped models and test slice."""

import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from cifar_cnn.classifier import CifarClassifier
from cifar_cnn.data.cifar10 import REPO_ROOT, SLICE_PATH
from cifar_cnn.export import (
    ONNXClassifier,
    TFLiteClassifier,
    export_onnx,
    export_saved_model,
    export_tflite,
)
from training.cli import export_main

FLAGSHIP = REPO_ROOT / "models" / "resnet_fast"


@pytest.fixture(scope="module")
def saved_model(flagship, tmp_path_factory):
    return export_saved_model(flagship, tmp_path_factory.mktemp("serving") / "cifar10" / "1")


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG")
    return buffer.getvalue()


def test_saved_model_signatures_answer_like_the_keras_model(flagship, saved_model, slice_data):
    images = slice_data.x_test
    expected = flagship.predict(images)  # calibrated, as the app shows them
    loaded = tf.saved_model.load(str(saved_model))
    assert set(loaded.signatures) == {"serving_default", "serve_bytes"}

    out = loaded.signatures["serving_default"](images=tf.constant(images))
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)
    names = np.array(flagship.class_names)
    assert [c.decode() for c in out["classes"].numpy()] == list(names[expected.argmax(1)])
    assert out["class_names"].shape == (len(images), 10)

    encoded = tf.constant([png_bytes(image) for image in images[:50]])
    out = loaded.signatures["serve_bytes"](image_bytes=encoded)
    np.testing.assert_allclose(out["probabilities"].numpy(), expected[:50], atol=1e-5)


@pytest.mark.parametrize("fmt", ["JPEG", "GIF", "BMP", "PNG-gray", "PNG-alpha"])
def test_serve_bytes_decodes_every_common_format(flagship, saved_model, slice_data, fmt):
    from cifar_cnn.data.images import to_model_input

    picture = Image.fromarray(slice_data.x_test[1]).resize((96, 96), Image.Resampling.BICUBIC)
    picture = {"PNG-gray": picture.convert("L"), "PNG-alpha": picture.convert("RGBA")}.get(
        fmt, picture
    )
    buffer = io.BytesIO()
    picture.save(buffer, fmt.split("-")[0])
    loaded = tf.saved_model.load(str(saved_model))
    out = loaded.signatures["serve_bytes"](image_bytes=tf.constant([buffer.getvalue()]))
    library = flagship.predict(to_model_input(buffer.getvalue())[0])[0]
    assert out["probabilities"].numpy()[0].argmax() == library.argmax()


@pytest.mark.parametrize("size", [(120, 90), (20, 24)])  # shrunk (area) and enlarged (bicubic)
def test_encoded_photos_are_cropped_and_resized_in_the_graph_like_the_library(slice_data, size):
    from cifar_cnn.data.images import to_model_input
    from cifar_cnn.export.graph import decode_to_model_input

    photo = np.asarray(Image.fromarray(slice_data.x_test[1]).resize(size, Image.Resampling.BICUBIC))
    in_graph = decode_to_model_input(tf.constant(png_bytes(photo))).numpy().astype(float)
    library = to_model_input(photo)[0][0].astype(float)
    assert np.abs(in_graph - library).mean() < 2.0  # of 255 levels; the resamplers differ slightly


def test_saved_model_cli_runs_the_export(flagship, saved_model, slice_data, tmp_path):
    images = slice_data.x_test[:20]
    np.save(tmp_path / "images.npy", images)
    cli = shutil.which("saved_model_cli") or Path(sys.executable).with_name("saved_model_cli")
    subprocess.run(
        [cli, "run", "--dir", str(saved_model), "--tag_set", "serve",
         "--signature_def", "serving_default", "--inputs", f"images={tmp_path / 'images.npy'}",
         "--outdir", str(tmp_path / "out")],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    probabilities = np.load(tmp_path / "out" / "probabilities.npy")
    np.testing.assert_allclose(probabilities, flagship.predict(images), atol=1e-5)


def test_an_existing_version_folder_is_never_overwritten(flagship, saved_model):
    with pytest.raises(ValueError, match="already exists; choose a new version folder"):
        export_saved_model(flagship, saved_model)


@pytest.mark.parametrize(("quantization", "agreement"), [("float16", 0.99), ("int8", 0.97)])
def test_tflite_agrees_with_the_keras_model(
    flagship, slice_data, tmp_path, quantization, agreement
):
    path = export_tflite(
        flagship, tmp_path / f"m-{quantization}.tflite", quantization, slice_data.x_train[:200]
    )
    keras_labels = flagship.predict(slice_data.x_test, calibrated=False).argmax(1)
    tflite_labels = TFLiteClassifier(path).predict(slice_data.x_test).argmax(1)
    assert np.mean(tflite_labels == keras_labels) >= agreement
    assert path.stat().st_size < (FLAGSHIP / "model.weights.h5").stat().st_size


def test_int8_needs_representative_images(flagship, tmp_path):
    with pytest.raises(ValueError, match="int8 quantization needs representative_images"):
        export_tflite(flagship, tmp_path / "m.tflite", "int8")


def test_int8_keeps_seed_cnns_answers_once_its_batchnorm_scales_move_before_the_relu(
    slice_data, tmp_path
):
    # seed_cnn normalises after each ReLU; quantized as trained, its int8 file agreed with Keras
    # on about a third of the test images.
    seed_cnn = CifarClassifier.from_pretrained(REPO_ROOT / "models" / "seed_cnn")
    path = export_tflite(seed_cnn, tmp_path / "seed_cnn.tflite", "int8", slice_data.x_train[:200])
    keras_labels = seed_cnn.predict(slice_data.x_test, calibrated=False).argmax(1)
    tflite_labels = TFLiteClassifier(path).predict(slice_data.x_test).argmax(1)
    assert np.mean(tflite_labels == keras_labels) >= 0.97


def test_moving_batchnorm_scales_before_the_relu_keeps_the_function(flagship, slice_data):
    from cifar_cnn.export.tflite import scales_moved_before_relu

    seed_cnn = CifarClassifier.from_pretrained(REPO_ROOT / "models" / "seed_cnn")
    original = [np.array(w) for w in seed_cnn.model.get_weights()]
    moved = scales_moved_before_relu(seed_cnn.model)
    images = slice_data.x_test[:100]
    np.testing.assert_allclose(
        moved.predict(images, verbose=0), seed_cnn.model.predict(images, verbose=0), atol=1e-5
    )
    # Every BatchNormalization after a ReLU now only flips signs and shifts ...
    for name in ("block1_bn", "block2_bn", "block3_bn", "dense_bn"):
        layer = moved.get_layer(name)
        np.testing.assert_array_equal(np.asarray(layer.moving_variance), 1.0)
    # ... and the model passed in is untouched; one without the pattern comes back as it is.
    for before, after in zip(original, seed_cnn.model.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    assert scales_moved_before_relu(flagship.model) is flagship.model


def test_moving_scales_is_exact_for_negative_zero_and_large_scales_and_any_epsilon():
    import keras

    from cifar_cnn.export.tflite import scales_moved_before_relu

    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(4, activation="relu", name="hidden")(inputs)
    normed = keras.layers.BatchNormalization(epsilon=0.5, name="bn")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(normed))
    rng = np.random.default_rng(0)
    model.get_layer("hidden").set_weights([rng.normal(size=(6, 4)), rng.normal(size=4)])
    model.get_layer("bn").set_weights([
        np.array([-2.0, 0.0, 30.0, 0.5]),  # gamma: negative, zero, large, small
        rng.normal(size=4), rng.normal(size=4), np.array([0.01, 1.0, 1e-4, 4.0]),
    ])  # fmt: skip
    x = rng.normal(size=(64, 6)).astype("float32")
    moved = scales_moved_before_relu(model)
    np.testing.assert_allclose(moved.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-4)
    # A ReLU output the model also returns is left alone.
    both = keras.Model(inputs, [hidden, normed])
    assert scales_moved_before_relu(both) is both


def test_onnx_answers_like_the_keras_model(flagship, slice_data, tmp_path):
    # The flagship's GELU needs erfc, which ONNX lacks (the CLI test below exports the nested
    # mobilenet_transfer).
    classifier = flagship
    path = export_onnx(classifier, tmp_path / "resnet_fast.onnx")
    expected = classifier.predict(slice_data.x_test)  # calibrated, as the app shows them
    onnx = ONNXClassifier(path).predict(slice_data.x_test)
    assert onnx.shape == expected.shape and onnx.dtype == np.float32
    assert np.abs(onnx - expected).max() < 1e-4
    assert np.mean(onnx.argmax(1) == expected.argmax(1)) >= 0.999


def test_cifar_export_command_writes_every_format(tmp_path, capsys, slice_data):
    export_main([str(FLAGSHIP), str(tmp_path / "serving" / "1")])
    assert (tmp_path / "serving" / "1" / "saved_model.pb").is_file()
    export_main([str(FLAGSHIP), str(tmp_path / "m.tflite"), "--format", "tflite",
                 "--quantization", "int8", "--data", str(SLICE_PATH),
                 "--representative-images", "100"])  # fmt: skip
    assert (tmp_path / "m.tflite").is_file() and "Wrote" in capsys.readouterr().out
    export_main([str(REPO_ROOT / "models" / "mobilenet_transfer"), str(tmp_path / "m.onnx"),
                 "--format", "onnx"])  # fmt: skip
    transfer = CifarClassifier.from_pretrained(REPO_ROOT / "models" / "mobilenet_transfer")
    images = slice_data.x_test[:100]
    onnx = ONNXClassifier(tmp_path / "m.onnx").predict(images)
    assert np.abs(onnx - transfer.predict(images)).max() < 1e-4
    assert ONNXClassifier(tmp_path / "m.onnx").predict(images[0]).shape == (10,)  # one image
    with pytest.raises(SystemExit, match="cifar-export: error: .*already exists"):
        export_main([str(FLAGSHIP), str(tmp_path / "serving" / "1")])
