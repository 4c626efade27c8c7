"""cifar_cnn.models: the registry and the three model families."""

import h5py
import keras
import numpy as np
import pytest

from cifar_cnn.models import create_model, list_models
from cifar_cnn.models.resnet_fast import patch_whitening_filters


def test_registry_lists_the_three_families():
    assert list_models() == ["mobilenet_transfer", "resnet_fast", "seed_cnn"]
    with pytest.raises(ValueError, match="unknown model 'vgg'.*resnet_fast"):
        create_model("vgg")


@pytest.mark.parametrize(
    "name, options",
    [
        ("seed_cnn", {}),
        ("resnet_fast", {}),
        ("mobilenet_transfer", {"backbone_weights": None, "input_size": 64}),
    ],
)
def test_models_take_raw_uint8_and_return_probabilities(name, options, slice_data):
    model = create_model(name, **options)
    assert model.inputs[0].dtype == "uint8" and tuple(model.inputs[0].shape[1:]) == (32, 32, 3)
    probabilities = keras.ops.convert_to_numpy(model(slice_data.x_test[:4], training=False))
    assert probabilities.shape == (4, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_seed_cnn_is_the_original_design_with_same_padding():
    model = create_model("seed_cnn")
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [32, 32, 64, 64, 128, 128]
    assert {c.padding for c in convs} == {"same"}
    assert model.get_layer("dense").units == 512
    assert model.get_layer("dense_dropout").rate == 0.5
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers) == 4


def test_patch_whitening_decorrelates_image_patches(slice_data):
    images = slice_data.x_train[:500]
    model = create_model("resnet_fast", whitening_images=images)
    probe = keras.Model(model.inputs, model.get_layer("whiten").output)
    features = keras.ops.convert_to_numpy(probe(images))
    half = features.shape[-1] // 2  # the second half are the negated filters
    whitened = np.corrcoef(features[..., :half].reshape(-1, half), rowvar=False)
    standardized = keras.ops.convert_to_numpy(
        keras.Model(model.inputs, model.get_layer("standardize").output)(images)
    )
    raw = np.corrcoef(standardized[:, :-1, :-1, :].reshape(-1, 3), rowvar=False)  # R, G, B
    off_diagonal = ~np.eye(half, dtype=bool)
    assert raw[0, 1] > 0.8  # neighbouring values in natural images are strongly correlated...
    assert np.abs(whitened[off_diagonal]).max() < 0.05  # ...and no longer after whitening
    np.testing.assert_array_equal(
        model.get_layer("whiten").get_weights()[0], patch_whitening_filters(images)
    )
    assert not model.get_layer("whiten").trainable


def test_mobilenet_backbone_carries_the_imagenet_file_weights(mobilenet_weights):
    model = create_model("mobilenet_transfer", backbone_weights=str(mobilenet_weights))
    backbone = model.get_layer("backbone")
    with h5py.File(mobilenet_weights, "r") as weights_file:
        for layer_name in ("conv1", "conv_dw_1", "conv_pw_13", "conv_pw_13_bn"):
            group = weights_file[layer_name]
            stored = [np.asarray(group[name]) for name in group.attrs["weight_names"]]
            actual = backbone.get_layer(layer_name).get_weights()
            assert len(stored) == len(actual)
            for expected, got in zip(stored, actual, strict=True):
                np.testing.assert_array_equal(got, expected)
    random = create_model("mobilenet_transfer", backbone_weights=None).get_layer("backbone")
    assert not np.array_equal(
        random.get_layer("conv1").get_weights()[0], backbone.get_layer("conv1").get_weights()[0]
    )


def test_transfer_model_accepts_a_resnet50_backbone_offline():
    model = create_model(
        "mobilenet_transfer", backbone="resnet50", backbone_weights=None, input_size=32
    )
    assert model.get_layer("backbone").name == "backbone"
    assert model.count_params() > 20_000_000


def test_transfer_model_rejects_a_missing_weights_file(tmp_path):
    with pytest.raises(ValueError, match="backbone weights file not found"):
        create_model("mobilenet_transfer", backbone_weights=str(tmp_path / "nope.h5"))


@pytest.mark.parametrize("scale", [0, -64])
def test_resnet_fast_rejects_a_bias_lr_scale_that_is_not_positive(scale):
    with pytest.raises(ValueError, match="bias_lr_scale must be positive"):
        create_model("resnet_fast", bias_lr_scale=scale)


def test_resnet_fast_batchnorm_epsilon_is_an_option_and_must_be_positive():
    model = create_model("resnet_fast", bn_epsilon=1e-12)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 6 and {layer.epsilon for layer in norms} == {1e-12}
    with pytest.raises(ValueError, match="bn_epsilon must be positive"):
        create_model("resnet_fast", bn_epsilon=0)


def test_batchnorm_biases_learn_faster_by_the_bias_lr_scale_and_still_save(slice_data, tmp_path):
    images, labels = slice_data.x_train[:64], keras.utils.to_categorical(slice_data.y_train[:64])

    def effective_bias(model):  # what is added after the first BatchNorm's normalisation
        if "group1_bn1_bias" in [layer.name for layer in model.layers]:
            layer = model.get_layer("group1_bn1_bias")
            return layer.scale * keras.ops.convert_to_numpy(layer.stored)
        return keras.ops.convert_to_numpy(model.get_layer("group1_bn1").beta)

    steps = {}
    for scale in (1, 64):
        keras.utils.set_random_seed(0)
        model = create_model("resnet_fast", whitening_images=images, bias_lr_scale=scale)
        model.compile(keras.optimizers.SGD(0.01), "categorical_crossentropy")
        before = effective_bias(model)
        model.train_on_batch(images, labels)
        steps[scale] = effective_bias(model) - before
    # Same seed, same function, same gradient: only the step size of the bias differs.
    assert np.abs(steps[1]).max() > 0
    np.testing.assert_allclose(steps[64], 64 * steps[1], rtol=1e-3, atol=1e-7)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(loaded(images[:4]), model(images[:4]), rtol=1e-6)
