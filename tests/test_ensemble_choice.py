"""training.ensemble_choice: which models make the shipped ensemble, decided on validation."""

import shutil

import pytest

from training.ensemble_choice import Candidate, choose


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
    assert f"Build it with: cifar-ensemble {folders[0]} {folders[1]} --output" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]  # nothing written


def test_cifar_ensemble_choose_needs_two_models(trained_seed_cnn, capsys):
    from training.cli import ensemble_main

    with pytest.raises(SystemExit, match="at least 2 models"):
        ensemble_main([str(trained_seed_cnn), "--choose", "--data", "data/cifar10_slice.npz"])
