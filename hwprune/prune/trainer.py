"""Minibatch SGD with momentum and weight decay, for :class:`~hwprune.prune.model.Model`.

The update per weight tensor ``w`` with gradient ``g``::

    v <- momentum * v - lr * (g + weight_decay * w)
    w <- w + v

Weight decay applies to weights, not biases. The learning rate follows a cosine from
``lr`` down to ``lr * final_lr_fraction`` over the run. When a layer is not splicing,
its pruned weights are zeroed after every step, so they stay pruned; a splicing layer
(dynamic network surgery) keeps updating them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from ..errors import InputError
from .data import Dataset
from .model import Model


@dataclass(frozen=True)
class TrainConfig:
    """One training recipe. ``lr`` and ``weight_decay`` are per step, unitless."""

    epochs: int = 30
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 1e-4
    final_lr_fraction: float = 0.02

    def __post_init__(self):
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0 or not 0 <= self.momentum < 1:
            raise InputError("training recipe: epochs >= 0, batch_size >= 1, lr > 0 and "
                             f"0 <= momentum < 1 are accepted, got {self}")

    def with_epochs(self, epochs: int, lr_scale: float = 1.0) -> "TrainConfig":
        return replace(self, epochs=epochs, lr=self.lr * lr_scale)


StepHook = Callable[[int, int], None]   # (step, total steps) -> None; may change masks


def train(model: Model, data: Dataset, config: TrainConfig, seed: int = 0,
          on_step: StepHook | None = None) -> list[float]:
    """Train ``model`` in place; returns the mean loss of each epoch.

    ``on_step(step, total)`` runs before every step (0-based) and may change masks
    (gradual pruning, network surgery)."""
    rng = np.random.default_rng(seed)
    n = data.x_train.shape[0]
    per_epoch = math.ceil(n / config.batch_size)
    total = per_epoch * config.epochs
    velocity = {id(lay): (np.zeros_like(lay.weight), np.zeros_like(lay.bias))
                for lay in model.prunable()}
    losses, step = [], 0
    for _ in range(config.epochs):
        order = rng.permutation(n)
        epoch_loss = 0.0
        for b in range(per_epoch):
            if on_step is not None:
                on_step(step, total)
            idx = order[b * config.batch_size:(b + 1) * config.batch_size]
            epoch_loss += model.loss_and_backward(data.x_train[idx], data.y_train[idx]) * idx.size
            frac = step / max(total - 1, 1)
            lr = config.lr * (config.final_lr_fraction
                              + (1 - config.final_lr_fraction) * 0.5 * (1 + math.cos(math.pi * frac)))
            for lay in model.prunable():
                vw, vb = velocity[id(lay)]
                vw *= config.momentum
                vw -= lr * (lay.dweight + config.weight_decay * lay.weight)
                vb *= config.momentum
                vb -= lr * lay.dbias
                lay.weight += vw
                lay.bias += vb
                if not lay.splice:
                    lay.apply_mask()
                    vw *= lay.mask
            step += 1
        losses.append(epoch_loss / n)
    return losses

