"""training.distill: training toward a teacher's probabilities as well as the labels."""

import numpy as np
import pytest

from cifar_cnn.models import get_recipe
from training.distill import TARGETS_FILE, distillation_targets
from training.train import make_dataset, train


def test_targets_mix_the_one_hot_label_with_the_teachers_probabilities():
    x = np.zeros((2, 32, 32, 3), np.uint8)
    teacher = np.array([[0.2, 0.8, *[0.0] * 8], [0.5, 0.5, *[0.0] * 8]], np.float32)
    ds = make_dataset(x, np.array([0, 1]), batch_size=2, teacher=teacher, teacher_weight=0.25)
    _, targets = next(iter(ds))
    np.testing.assert_allclose(targets[0, :2], [0.75 + 0.05, 0.2])
    np.testing.assert_allclose(targets[1, :2], [0.125, 0.75 + 0.125])
    np.testing.assert_allclose(np.sum(targets, axis=1), 1.0, rtol=1e-6)
    _, plain = next(iter(make_dataset(x, np.array([0, 1]), batch_size=2)))
    np.testing.assert_array_equal(plain[:, :2], [[1, 0], [0, 1]])


def test_a_teacher_that_trained_on_the_runs_validation_images_is_refused(
    trained_seed_cnn, slice_data, tmp_path
):
    # The teacher held out the slice's default split; another split seed holds out other images.
    recipe = get_recipe("seed_cnn", teacher=str(trained_seed_cnn), split_seed=1)
    with pytest.raises(ValueError, match="the teacher trained on .* of this run's 100 validation"):
        distillation_targets(recipe, slice_data, tmp_path)
    assert not (tmp_path / TARGETS_FILE).exists()


def test_a_distilled_run_trains_on_the_teachers_probabilities_and_records_its_teacher(
    trained_seed_cnn, slice_data, tmp_path, capsys
):
    recipe = get_recipe("seed_cnn", epochs=1, teacher=str(trained_seed_cnn), teacher_weight=0.5)
    result = train(recipe, slice_data, tmp_path, verbose=0)
    printed = capsys.readouterr().out
    assert "probabilities for 900 training images" in printed
    assert "on this run's 100 validation images" in printed
    targets = np.load(tmp_path / TARGETS_FILE)
    assert targets.shape == (900, 10)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, rtol=1e-5)
    assert result.state.recipe["teacher"] == str(trained_seed_cnn)
    # Asked again, the finished run reads the teacher's probabilities back instead.
    train(recipe, slice_data, tmp_path, verbose=0)
    assert "read back from teacher_probabilities.npy" in capsys.readouterr().out


def test_a_distilled_models_card_names_its_teacher_by_folder(trained_seed_cnn):
    import json

    from cifar_cnn.report.model_card import render_model_card

    config = json.loads((trained_seed_cnn / "config.json").read_text())
    config["training"]["recipe"].update(teacher=str(trained_seed_cnn.parent), teacher_weight=0.5)
    card = str(render_model_card(config, None))
    assert (
        f"# CIFAR-10 seed CNN (the original design), distilled from {trained_seed_cnn.parent.name}"
        in card
    )
    assert "probabilities as well as the labels (weight 0.5 on the teacher)" in card
