"""webapp.history: the browser session's predictions, newest first, small."""

import numpy as np

from cifar_cnn.data.cifar10 import REPO_ROOT
from webapp import events
from webapp.history import HISTORY_LIMIT, add_to_history

SHIP = REPO_ROOT / "examples" / "test0001_ship.png"
FLAGSHIP = REPO_ROOT / "models" / "resnet_fast"


def test_history_keeps_the_newest_predictions_first(served):
    first = events.classify(served.get("resnet_fast"), str(SHIP))
    entries = add_to_history(None, first.view, "resnet_fast", first.probabilities)
    entries = add_to_history(entries, first.view, "model", first.probabilities)
    assert [h["model"] for h in entries] == ["model", "resnet_fast"]
    assert entries[0]["label"] == "ship" and entries[0]["thumbnail"].shape == (32, 32, 3)
    _, view = events.model_view(str(SHIP))
    np.testing.assert_array_equal(entries[0]["thumbnail"], view)  # exactly what the model saw
    # It owns its 3 KB: a slice would keep the 192 KB enlarged view alive in the session (the
    # load test's memory growth).
    assert entries[0]["thumbnail"].base is None and entries[0]["thumbnail"].nbytes == 3072
    assert entries[0]["warning"] == ""
    flagged = add_to_history(entries, first.view, "model", first.probabilities, flagged=True)
    assert flagged[0]["warning"] == "may not be one of the 10 classes"
    for _ in range(HISTORY_LIMIT + 5):
        entries = add_to_history(entries, first.view, "model", first.probabilities)
    assert len(entries) == HISTORY_LIMIT
