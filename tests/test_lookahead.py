"""training.lookahead: the slow weights, an EMA of the fast ones, and when they meet."""

import keras
import numpy as np
import pytest

from training.lookahead import Lookahead, lookahead_decay


def tiny_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3), keras.layers.BatchNormalization()]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    return model


def weights(model: keras.Model) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(v).copy() for v in model.weights]


def test_the_decay_grows_as_the_cube_of_progress_up_to_airbench_value():
    assert lookahead_decay(0, 100) == 0.0
    assert lookahead_decay(50, 100) == pytest.approx(0.95**5 / 8)
    assert lookahead_decay(100, 100) == pytest.approx(0.95**5)
    assert lookahead_decay(150, 100) == pytest.approx(0.95**5)  # never past the end


def test_synchronising_moves_the_average_towards_the_weights_and_the_weights_onto_it():
    model = tiny_model()
    lookahead = Lookahead(total_steps=10, steps_per_epoch=5)
    lookahead.set_model(model)
    lookahead.on_train_begin()
    start = weights(model)
    for v in model.weights:
        v.assign(v + 1.0)
    lookahead.synchronise(decay=0.75)
    for before, after in zip(start, weights(model), strict=True):
        np.testing.assert_allclose(after, 0.75 * before + 0.25 * (before + 1.0), rtol=1e-6)
    moved = weights(model)
    lookahead.synchronise(decay=0.0)  # early in training: the fast weights are kept as they are
    for before, after in zip(moved, weights(model), strict=True):
        np.testing.assert_array_equal(after, before)


def test_every_epoch_ends_synchronised_so_a_checkpoint_holds_the_whole_state():
    model = tiny_model()
    x, y = np.random.default_rng(0).normal(size=(2, 40, 4)).astype("float32")[0], np.zeros((40, 3))
    lookahead = Lookahead(total_steps=8, steps_per_epoch=4, every=3)
    seen = []

    class AfterEachEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(
                all(
                    np.array_equal(w, a)
                    for w, a in zip(weights(model), lookahead._average, strict=True)
                )
            )

    model.fit(x, y, batch_size=10, epochs=2, callbacks=[lookahead, AfterEachEpoch()], verbose=0)
    assert seen == [True, True]
    assert int(model.optimizer.iterations) == 8


def test_it_rejects_steps_that_are_not_positive():
    with pytest.raises(ValueError, match="must be positive"):
        Lookahead(total_steps=0, steps_per_epoch=1)
