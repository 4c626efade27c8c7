"""cifar_cnn.voting: soft and hard voting, ties, agreement, weights."""

import numpy as np
import pytest

from cifar_cnn.voting import agreement, hard_vote, soft_vote, validation_weights

# Three members, two images, three classes.
MEMBERS = np.array(
    [
        [[0.6, 0.3, 0.1], [0.1, 0.5, 0.4]],
        [[0.4, 0.5, 0.1], [0.1, 0.3, 0.6]],
        [[0.2, 0.7, 0.1], [0.6, 0.3, 0.1]],
    ]
)


def test_soft_vote_is_the_weighted_mean():
    np.testing.assert_allclose(soft_vote(MEMBERS), MEMBERS.mean(axis=0))
    weighted = soft_vote(MEMBERS, weights=[2, 1, 1])
    np.testing.assert_allclose(weighted[0], (2 * MEMBERS[0, 0] + MEMBERS[1, 0] + MEMBERS[2, 0]) / 4)


def test_hard_vote_counts_top_classes_and_breaks_ties_by_soft_score():
    # Image 0: votes 0, 1, 1 -> class 1. Image 1: votes 1, 2, 0 -> a three-way tie; the soft
    # scores are 0.27, 0.37, 0.37 -> classes 1 and 2 tie again -> the lower index, 1.
    assert hard_vote(MEMBERS).tolist() == [1, 1]
    # With member 1 weighted up, image 1's vote goes to its class 2 outright.
    assert hard_vote(MEMBERS, weights=[1, 2, 1]).tolist() == [1, 2]


def test_agreement_and_pairwise_disagreement():
    result = agreement(MEMBERS)
    assert result["all_agree"] == 0.0
    assert result["pairwise_disagreement"][1][2] == 0.5  # agree on image 0 (class 1), not 1


def test_bad_weights_are_refused():
    with pytest.raises(ValueError, match="non-negative weights"):
        soft_vote(MEMBERS, weights=[1, -1, 1])


def test_validation_weights_are_the_recorded_accuracies_or_none():
    configs = [{"training": {"best_val_accuracy": 0.9}}, {"training": {"best_val_accuracy": 0.8}}]
    assert validation_weights(configs) == [0.9, 0.8]
    assert validation_weights([*configs, {"architecture": "untrained"}]) is None
