"""training.ensemble_choice: which models make the shipped ensemble, decided on validation."""

import shutil

import numpy as np
import pytest

from training.ensemble_choice import Candidate, choose, rank_subsets


def candidate(names: str, flip_tta: float, plain: float = 0.94) -> Candidate:
    return Candidate(tuple(names.split("+")), plain, flip_tta, images=2000)


def test_the_most_accurate_with_flip_tta_ships_unless_a_smaller_one_is_within_noise():
    three, two = candidate("a+b+c", 0.9530), candidate("a+b", 0.9495)
    assert choose([three, two]) == three  # 0.35 points apart: more than noise
    close = candidate("a+c", 0.9512)
    assert choose([three, two, close]) == close  # 0.18 points below the best: fewer members win
    # Exactly 0.2 points (4 images of 2,000) still counts as a tie.
    assert choose([three, candidate("b+c", 0.9510)]).names == ("b", "c")


def test_among_equally_small_candidates_within_noise_the_more_accurate_ships():
    chosen = choose([
        candidate("a+b+c", 0.9530), candidate("a+b", 0.9515), candidate("b+c", 0.9520)
    ])  # fmt: skip
    assert chosen.names == ("b", "c")


def test_every_subset_is_scored_by_its_own_members_weighted_soft_vote():
    y = np.array([0, 0, 1, 1])
    class_one = {"a": [0.1, 0.6, 0.9, 0.4], "b": [0.3, 0.2, 0.45, 0.8], "c": [0.75, 0.45, 0.7, 0.7]}
    plain = np.stack([np.stack([1 - np.array(p), p], axis=1) for p in class_one.values()])
    ranked = rank_subsets(list(class_one), plain, plain, [1.0, 1.0, 1.0], y)
    # Alone, a is right on 2 of the 4 images, b and c on 3; their votes do better.
    assert {c.names: c.accuracy for c in ranked} == {
        ("a", "b"): 1.0, ("a", "c"): 0.75, ("b", "c"): 0.75, ("a", "b", "c"): 1.0
    }  # fmt: skip
    assert ranked[0].names == ("a", "b")  # as accurate as all three, with fewer members
    # Weights count: c weighted four times outvotes the others on the first image.
    weighted = rank_subsets(list(class_one), plain, plain, [1.0, 1.0, 4.0], y)
    assert {c.names: c.accuracy for c in weighted}[("a", "b", "c")] == 0.75
    # The flip-TTA column is scored from the flipped probabilities.
    inverted = rank_subsets(list(class_one), plain, plain[:, :, ::-1], [1.0, 1.0, 1.0], y)
    assert {c.names: c.flip_tta_accuracy for c in inverted}[("a", "b")] == 0.0


def test_choosing_from_nothing_is_an_error():
    with pytest.raises(ValueError, match="no candidates"):
        choose([])


def test_cifar_ensemble_choose_scores_every_subset_on_validation_and_builds_nothing(
    trained_seed_cnn, tmp_path, capsys
):
    from training.cli import ensemble_main

    folders = []
    for name in ("a", "b", "c"):
        shutil.copytree(trained_seed_cnn, tmp_path / name)
        folders.append(str(tmp_path / name))
    ensemble_main([*folders, "--choose", "--data", "data/cifar10_slice.npz"])
    printed = capsys.readouterr().out
    assert "| members | validation soft vote (100 images) | with flip TTA |" in printed
    rows = [line for line in printed.splitlines() if line.startswith("| ") and "+" in line]
    assert len(rows) == 4  # a+b, a+c, b+c, a+b+c
    # Identical models score alike, so the rule takes two of them, not three.
    assert "| **a + b** (chosen) |" in printed
    # Each model alone, on the same images, for reference: identical models, identical figures.
    assert "| each model alone (not a candidate) | validation soft vote (100 images) |" in printed
    alone = [line for line in printed.splitlines() if line.startswith(("| a |", "| b |", "| c |"))]
    assert len(alone) == 3 and len({line.split("|", 2)[2] for line in alone}) == 1
    assert f"Build it with: cifar-ensemble {folders[0]} {folders[1]} --output" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]  # nothing written


def test_cifar_ensemble_choose_needs_two_models(trained_seed_cnn, capsys):
    from training.cli import ensemble_main

    with pytest.raises(SystemExit, match="at least 2 models"):
        ensemble_main([str(trained_seed_cnn), "--choose", "--data", "data/cifar10_slice.npz"])


def test_cifar_ensemble_choose_refuses_flags_of_building(trained_seed_cnn):
    from training.cli import ensemble_main

    folders = [str(trained_seed_cnn)] * 2
    with pytest.raises(SystemExit, match="--choose builds nothing, so --output, --ood cannot"):
        ensemble_main([*folders, "--choose", "--output", "x", "--ood"])
