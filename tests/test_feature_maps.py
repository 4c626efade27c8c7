"""cifar_cnn.explain.feature_maps: a layer's channels for one image, as a grid picture."""

import numpy as np
import pytest

from cifar_cnn.explain.feature_maps import feature_map_grid, layer_activations
from cifar_cnn.models import create_model


@pytest.fixture(scope="module")
def seed_cnn():
    return create_model("seed_cnn")


def test_activations_have_the_layer_shape(seed_cnn, slice_data):
    activations = layer_activations(seed_cnn, slice_data.x_test[0], "block2_conv1")
    assert activations.shape == (16, 16, 64)


def test_grid_tiles_the_most_active_channels(seed_cnn, slice_data):
    grid = feature_map_grid(seed_cnn, slice_data.x_test[0], "block1_conv1", max_channels=16,
                            columns=4, cell=32)  # fmt: skip
    assert grid.shape == (4 * 34 - 2, 4 * 34 - 2, 3) and grid.dtype == np.uint8
    assert len(np.unique(grid.reshape(-1, 3), axis=0)) > 20  # real pictures, not blank tiles


def test_default_layer_and_bad_layer(seed_cnn, slice_data):
    assert feature_map_grid(seed_cnn, slice_data.x_test[0]).shape[2] == 3
    with pytest.raises(ValueError, match="not a spatial layer"):
        layer_activations(seed_cnn, slice_data.x_test[0], "dense")
