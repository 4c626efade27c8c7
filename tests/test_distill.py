"""training.distill: training toward a teacher's probabilities as well as the labels."""

import json

import numpy as np
import pytest

from cifar_cnn.classifier import CifarClassifier
from cifar_cnn.data.cifar10 import split_validation
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
    with pytest.raises(ValueError, match="teacher_weight go together"):
        make_dataset(x, np.array([0, 1]), batch_size=2, teacher=teacher)


def test_a_teacher_that_trained_on_the_runs_validation_images_is_refused(
    trained_seed_cnn, slice_data, tmp_path
):
    # The teacher held out the slice's default split; another split seed holds out other images.
    recipe = get_recipe("seed_cnn", teacher=str(trained_seed_cnn), split_seed=1)
    x_train, *_ = split_validation(slice_data.x_train, slice_data.y_train, 0.1, seed=1)
    with pytest.raises(ValueError, match="the teacher trained on .* of this run's 100 validation"):
        distillation_targets(recipe, slice_data, x_train, tmp_path)
    assert not (tmp_path / TARGETS_FILE).exists()


def test_the_targets_are_the_teachers_flip_tta_probabilities_kept_for_the_same_run_only(
    trained_seed_cnn, slice_data, tmp_path, capsys
):
    recipe = get_recipe("seed_cnn", teacher=str(trained_seed_cnn))
    x_train, *_ = split_validation(slice_data.x_train, slice_data.y_train, 0.1, seed=0)
    teacher = distillation_targets(recipe, slice_data, x_train, tmp_path)
    expected = CifarClassifier.from_pretrained(trained_seed_cnn).predict(x_train, flip_tta=True)
    np.testing.assert_allclose(teacher.probabilities, expected, rtol=1e-5)
    assert teacher.record["name"] == trained_seed_cnn.name
    assert "probabilities for 900 training images" in capsys.readouterr().out
    # The same run reads them back; other training images are not the same run.
    again = distillation_targets(recipe, slice_data, x_train, tmp_path)
    assert "read back" in capsys.readouterr().out
    np.testing.assert_array_equal(again.probabilities, teacher.probabilities)
    assert again.record == teacher.record
    distillation_targets(recipe, slice_data, x_train[::-1], tmp_path)
    assert "read back" not in capsys.readouterr().out


def test_a_distilled_run_records_its_teacher_and_says_so_on_its_card(
    trained_seed_cnn, slice_data, tmp_path, capsys
):
    from cifar_cnn.report.model_card import render_model_card
    from training.model_folder import save_trained_model

    recipe = get_recipe("seed_cnn", epochs=1, teacher=str(trained_seed_cnn), teacher_weight=0.5)
    result = train(recipe, slice_data, tmp_path / "run", verbose=0)
    assert "on this run's 100 validation images" in capsys.readouterr().out
    assert result.state.recipe["teacher"] == str(trained_seed_cnn)
    save_trained_model(
        result, recipe, slice_data, tmp_path / "model", command="pytest", evaluate=False
    )
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    teacher = config["training"]["teacher"]
    assert teacher["name"] == trained_seed_cnn.name and teacher["validation_images"] == 100
    card = str(render_model_card(config, None))
    assert f"# CIFAR-10 seed CNN (the original design), distilled from {teacher['name']}" in card
    assert "probabilities as well as the labels (weight 0.5 on the teacher's)" in card


def test_a_run_saved_before_a_recipe_field_existed_still_resumes(slice_data, tmp_path):
    from training.train import _changed_fields, _comparable

    recipe = get_recipe("seed_cnn", epochs=1)
    saved = _comparable(recipe)
    del saved["teacher"], saved["teacher_weight"]  # state.json from before distillation
    assert _changed_fields(saved, recipe) == []
    assert _changed_fields(saved, recipe.replace(teacher="models/ensemble")) == ["teacher"]
