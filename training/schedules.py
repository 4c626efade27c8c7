"""Learning-rate schedules (Keras `LearningRateSchedule`s, serializable)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="cifar_cnn")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from `start * peak` to `peak`, then linear decay to `end * peak` (airbench).

    >>> schedule = OneCycle(peak=1.5, total_steps=440)
    """

    def __init__(
        self,
        peak: float,
        total_steps: int,
        warmup_fraction: float = 0.23,
        start: float = 0.2,
        end: float = 0.07,
    ):
        self.peak = peak
        self.total_steps = total_steps
        self.warmup_fraction = warmup_fraction
        self.start = start
        self.end = end

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = max(1.0, self.warmup_fraction * self.total_steps)
        decay = max(1.0, self.total_steps - warmup)
        rising = self.start + (1.0 - self.start) * step / warmup
        falling = 1.0 + (self.end - 1.0) * ops.minimum((step - warmup) / decay, 1.0)
        return self.peak * ops.where(step < warmup, rising, falling)

    def get_config(self) -> dict:
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup_fraction": self.warmup_fraction,
            "start": self.start,
            "end": self.end,
        }


def build_schedule(
    name: str, learning_rate: float, steps_per_epoch: int, epochs: int, restart_epochs: int = 10
):
    """A schedule by name: "one_cycle", "cosine_restarts" (SGDR; first period `restart_epochs`,
    then doubling) or "constant"."""
    total_steps = max(1, steps_per_epoch * epochs)
    if name == "one_cycle":
        return OneCycle(learning_rate, total_steps)
    if name == "cosine_restarts":
        return keras.optimizers.schedules.CosineDecayRestarts(
            learning_rate, first_decay_steps=max(1, steps_per_epoch * restart_epochs), t_mul=2.0
        )
    if name == "constant":
        return learning_rate
    raise ValueError(f"unknown schedule {name!r}; choose one_cycle, cosine_restarts or constant")
