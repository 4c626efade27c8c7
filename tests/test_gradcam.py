"""cifar_cnn.explain.gradcam: CAMs for every model type, and evidence they point at what matters."""

import keras
import numpy as np
import pytest

from bench.gradcam_faithfulness import occlusion_check
from cifar_cnn.classifier import CifarClassifier
from cifar_cnn.data.cifar10 import REPO_ROOT
from cifar_cnn.explain.gradcam import GradCam, cam_layers, default_layer, overlay_heatmap
from cifar_cnn.explain.probing import spatial_layers
from cifar_cnn.models import create_model


@pytest.fixture(scope="module")
def models(slice_data):
    return {
        "seed_cnn": create_model("seed_cnn"),
        "resnet_fast": create_model("resnet_fast", whitening_images=slice_data.x_train),
        "mobilenet_transfer": create_model(
            "mobilenet_transfer", backbone_weights=None, input_size=64
        ),
    }


def test_default_layer_is_the_last_spatial_feature_layer(models):
    assert default_layer(models["seed_cnn"]) == "block3_conv2"
    assert default_layer(models["resnet_fast"]) == "group3_gelu2"
    assert default_layer(models["mobilenet_transfer"]) == "backbone/conv_pw_13_relu"


@pytest.mark.parametrize("name", ["seed_cnn", "resnet_fast", "mobilenet_transfer"])
@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_maps_are_finite_in_unit_range_for_every_class(models, name, method, slice_data):
    cam = GradCam(models[name])
    images = slice_data.x_test[:2]
    for class_index in range(10):
        for result in cam.explain(images, class_index=class_index, method=method):
            assert result.heatmap.shape == (32, 32) and result.heatmap.dtype == np.float32
            assert np.isfinite(result.heatmap).all()
            assert 0.0 <= result.heatmap.min() and result.heatmap.max() <= 1.0
            assert result.class_index == class_index


def test_default_class_is_the_prediction_and_probabilities_match_the_model(models, slice_data):
    model = models["seed_cnn"]
    result = GradCam(model).explain(slice_data.x_test[0])
    expected = keras.ops.convert_to_numpy(model(slice_data.x_test[:1], training=False))[0]
    np.testing.assert_allclose(result.probabilities, expected, rtol=1e-5, atol=1e-6)
    assert result.class_index == int(expected.argmax())


def test_works_on_a_model_reloaded_from_disk(trained_seed_cnn, slice_data):
    model = CifarClassifier.from_pretrained(trained_seed_cnn).model
    result = GradCam(model, layer="block2_conv2").explain(slice_data.x_test[0])
    assert result.layer == "block2_conv2" and np.isfinite(result.heatmap).all()


def test_works_on_a_sequential_model(slice_data):
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3), dtype="uint8"),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    result = GradCam(model).explain(slice_data.x_test[0])
    assert result.layer == "conv" and result.heatmap.shape == (32, 32)


@pytest.mark.parametrize("name", ["seed_cnn", "resnet_fast", "mobilenet_transfer"])
def test_every_offered_layer_explains_and_preprocessing_layers_are_not_offered(
    models, name, slice_data
):
    layers = cam_layers(models[name])
    assert not {"standardize", "upsample", "mobilenet_preprocess"} & set(layers)
    assert default_layer(models[name]) in layers
    heatmap = GradCam(models[name], layers[0]).explain(slice_data.x_test[0]).heatmap  # the edge
    assert np.isfinite(heatmap).all() and heatmap.max() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no Grad-CAM at layer"):
        GradCam(models[name], spatial_layers(models[name])[0])


def test_bad_layer_class_and_method_are_refused(models, slice_data):
    with pytest.raises(ValueError, match="no Grad-CAM at layer 'dense'"):
        GradCam(models["seed_cnn"], layer="dense")
    cam = GradCam(models["seed_cnn"])
    with pytest.raises(ValueError, match="class index must be in 0..9"):
        cam.explain(slice_data.x_test[0], class_index=10)
    with pytest.raises(ValueError, match="unknown CAM method"):
        cam.explain(slice_data.x_test[0], method="lime")
    assert "backbone/conv_dw_1" in spatial_layers(models["mobilenet_transfer"])


def test_overlay_blends_a_colour_map_over_the_image():
    image = np.full((64, 48, 3), 100, np.uint8)
    heatmap = np.zeros((32, 32), np.float32)
    heatmap[:16] = 1.0
    overlay = overlay_heatmap(image, heatmap, opacity=0.5, colormap="jet")
    assert overlay.shape == (64, 48, 3) and overlay.dtype == np.uint8
    np.testing.assert_array_equal(overlay_heatmap(image, heatmap, opacity=0.0), image)
    hot, cold = overlay[5, 5], overlay[60, 5]  # jet: red where the heat is, blue where not
    assert hot[0] > hot[2] and cold[2] > cold[0]
    with pytest.raises(ValueError, match="unknown colour map"):
        overlay_heatmap(image, heatmap, colormap="rainbowish")


def patch_dataset(n: int, seed: int):
    """Noise images whose class (red or green) is told only by a 6x6 patch at a random place."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, (n, 32, 32, 3)).astype(np.uint8)
    labels = rng.integers(0, 2, n)
    corners = rng.integers(0, 32 - 6, (n, 2))
    for image, label, (y, x) in zip(images, labels, corners, strict=True):
        image[y : y + 6, x : x + 6, label] = 255
    return images, labels, corners


def test_grad_cam_peaks_on_the_patch_that_decides_the_class():
    keras.utils.set_random_seed(0)
    x_train, y_train, _ = patch_dataset(1500, seed=0)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3), dtype="uint8"),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="features"),
            keras.layers.GlobalMaxPooling2D(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=4, batch_size=64, verbose=0)

    x_test, y_test, corners = patch_dataset(200, seed=1)
    results = GradCam(model).explain(x_test, class_index=list(y_test))
    hits = 0
    for result, (y, x) in zip(results, corners, strict=True):
        peak_y, peak_x = np.unravel_index(np.argmax(result.heatmap), result.heatmap.shape)
        hits += (y <= peak_y < y + 6) and (x <= peak_x < x + 6)
    accuracy = np.mean([r.class_index == r.probabilities.argmax() for r in results])
    assert accuracy > 0.95, "the toy model must first learn the task"
    assert hits / len(results) >= 0.9


def test_removing_what_the_flagship_looks_at_hurts_more_than_removing_random_pixels(slice_data):
    flagship = CifarClassifier.from_pretrained(REPO_ROOT / "models" / "resnet_fast")
    images = slice_data.x_test[:100]
    inpainted = occlusion_check(flagship.model, images, fraction=0.2)  # ROAD-style fill
    assert inpainted["images"] == 100 and inpainted["fill"] == "inpaint"
    assert inpainted["cam_drop"] > inpainted["random_pixels_drop"] + 0.02
    assert inpainted["cam_drop"] > inpainted["random_blob_drop"] + 0.05
    greyed = occlusion_check(flagship.model, images, fraction=0.2, fill="mean")
    assert greyed["cam_drop"] > greyed["random_blob_drop"] + 0.05
    with pytest.raises(ValueError, match="unknown fill 'zero'; choose inpaint or mean"):
        occlusion_check(flagship.model, images[:2], fill="zero")


def test_grad_cam_for_reuses_one_compiled_explainer_per_model_and_layer(models):
    from cifar_cnn.explain.gradcam import grad_cam_for

    model = models["seed_cnn"]
    assert grad_cam_for(model) is grad_cam_for(model)
    assert grad_cam_for(model, "block2_conv2") is not grad_cam_for(model)
    assert grad_cam_for(model, "block2_conv2").layer == "block2_conv2"
