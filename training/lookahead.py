"""Lookahead with an exponential moving average of the weights (hlb-CIFAR10 and airbench).

Every `every` optimizer steps the slow weights (an EMA of the fast ones) take a step towards the
fast weights, and the fast weights jump back to them. The EMA's decay grows over training as
`decay * progress**3`: early on the fast weights go unchanged, near the end they are averaged
over the last few dozen steps. BatchNorm's running statistics are averaged the same way.

>>> model.fit(data, callbacks=[Lookahead(total_steps=steps_per_epoch * epochs,
...                                      steps_per_epoch=steps_per_epoch)])

The weights are also synchronised on the last step of every epoch, so validation sees the slow
weights and a checkpoint written at the end of an epoch holds the whole state (the EMA then equals
the weights): a resumed run continues exactly.
"""

from __future__ import annotations

import keras
import numpy as np


def lookahead_decay(step: int, total_steps: int, decay: float = 0.95**5) -> float:
    """The EMA's decay at `step`: `decay * (step / total_steps) ** 3` (airbench's schedule)."""
    return decay * min(1.0, step / total_steps) ** 3


class Lookahead(keras.callbacks.Callback):
    """Pull the fast weights to their moving average every `every` steps and at each epoch's end."""

    def __init__(self, total_steps: int, steps_per_epoch: int, every: int = 5):
        super().__init__()
        if total_steps < 1 or steps_per_epoch < 1 or every < 1:
            raise ValueError("total_steps, steps_per_epoch and every must be positive")
        self.total_steps, self.steps_per_epoch, self.every = total_steps, steps_per_epoch, every
        self._average: list[np.ndarray] | None = None

    def on_train_begin(self, logs=None):
        # A fresh or resumed run starts with the EMA equal to the weights (see the module doc).
        self._average = [keras.ops.convert_to_numpy(v).copy() for v in self._variables()]

    def on_train_batch_end(self, batch, logs=None):
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        if step % self.every == 0 or (batch + 1) % self.steps_per_epoch == 0:
            self.synchronise(lookahead_decay(step, self.total_steps))

    def synchronise(self, decay: float) -> None:
        """Average: `ema = decay * ema + (1 - decay) * weights`; then `weights = ema`."""
        for variable, average in zip(self._variables(), self._average, strict=True):
            average *= decay
            average += (1.0 - decay) * keras.ops.convert_to_numpy(variable)
            variable.assign(average)

    def _variables(self) -> list:
        # Trainable weights and BatchNorm statistics; not the optimizer's or the seed generators'.
        return [v for v in self.model.weights if "float" in str(v.dtype)]
