"""hwprune's reference models for measured accuracy, sized to the 8x8 digits.

========== ============================================== ======= ===================
name       layers                                         weights recipe
========== ============================================== ======= ===================
digits-mlp fc1 64-300, fc2 300-100, fc3 100-10 (ReLU)      50,200 40 epochs, batch 16,
           (the LeNet-300-100 family of Han et al. 2015,          lr 0.05, wd 1e-3
           with 64 inputs)
digits-cnn conv1 1-6 3x3 pad 1, pool 2, conv2 6-16 3x3     19,518 60 epochs, batch 32,
           pad 1, pool 2, fc1 64-120, fc2 120-84,                 lr 0.03, wd 5e-4
           fc3 84-10 (LeNet-5 style)
========== ============================================== ======= ===================

A seed fixes initialization, data order and split; seed 0 is the default. Test
accuracy measured on this 2-core machine (``docs/pruning.md``): digits-mlp 98.9% at
seed 0 (96.7-99.2% over seeds 0-4; the test set has 359 images, one image = 0.28%),
digits-cnn 98.3% at seed 0 (96.9-98.9%); about 2.5 s and 6 s of training. Trained dense models are
kept in memory per (name, seed), so that several pruning runs in one process start
from the same trained weights without retraining.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import UnknownNameError
from ..workload.builder import NetworkBuilder
from ..workload.network import Network
from .data import Dataset, digits
from .layers import Conv2d, Dense, Flatten, MaxPool2d, ReLU
from .model import Model
from .trainer import TrainConfig, train


def _mlp(rng: np.random.Generator) -> Model:
    return Model("digits-mlp", [
        Flatten("flatten"),
        Dense("fc1", 64, 300, rng), ReLU("relu1"),
        Dense("fc2", 300, 100, rng), ReLU("relu2"),
        Dense("fc3", 100, 10, rng),
    ], (1, 8, 8))


def _cnn(rng: np.random.Generator) -> Model:
    return Model("digits-cnn", [
        Conv2d("conv1", 1, 6, 3, rng, padding=1), ReLU("relu1"), MaxPool2d("pool1", 2),
        Conv2d("conv2", 6, 16, 3, rng, padding=1), ReLU("relu2"), MaxPool2d("pool2", 2),
        Flatten("flatten"),
        Dense("fc1", 64, 120, rng), ReLU("relu3"),
        Dense("fc2", 120, 84, rng), ReLU("relu4"),
        Dense("fc3", 84, 10, rng),
    ], (1, 8, 8))


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    build: Callable[[np.random.Generator], Model]
    recipe: TrainConfig


MODELS: dict[str, ModelSpec] = {
    "digits-mlp": ModelSpec("digits-mlp", "MLP 64-300-100-10 (LeNet-300-100 family)", _mlp,
                            TrainConfig(epochs=40, batch_size=16, weight_decay=1e-3)),
    "digits-cnn": ModelSpec("digits-cnn", "LeNet-5-style CNN, 2 conv + 3 fc", _cnn,
                            TrainConfig(epochs=60, lr=0.03, weight_decay=5e-4)),
}


def spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownNameError(f"unknown model {name!r}; reference models: "
                               + ", ".join(MODELS)) from None


def build(name: str, seed: int = 0) -> Model:
    """An untrained reference model (weights drawn from ``seed``)."""
    return spec(name).build(np.random.default_rng(seed))


_TRAINED: dict[tuple[str, int], tuple[Model, Dataset]] = {}
"""Trained reference models of this process, by (name, seed)."""


def _trained(name: str, seed: int) -> tuple[Model, Dataset]:
    key = (name, seed)
    if key not in _TRAINED:
        data = digits(seed)
        model = build(name, seed)
        train(model, data, spec(name).recipe, seed=seed)
        _TRAINED[key] = (model, data)
    return _TRAINED[key]


def trained(name: str, seed: int = 0) -> tuple[Model, Dataset]:
    """A trained dense reference model (a fresh copy) and the data it was trained on."""
    model, data = _trained(name, seed)
    return model.copy(), data


def remember(name: str, seed: int, model: Model, data: Dataset) -> None:
    """Make ``model`` (trained by :func:`trained` in another process, and sent here
    with its data) this process's trained ``name`` at ``seed``, so that a study's
    worker does not train it again (training is deterministic in the seed)."""
    spec(name)
    _TRAINED.setdefault((name, seed), (model.copy(), data))


def to_network(model: Model, compact: bool = False) -> Network:
    """The model as a hwprune workload :class:`~hwprune.workload.network.Network`, so
    that the energy and latency simulators can cost it (layer names are kept).

    ``compact=True``: the physically smaller network that node pruning leaves, with
    only the output units that keep a weight (the last layer keeps its classes)."""
    b = NetworkBuilder(model.name, model.input_shape)
    x = b.input
    last = model.prunable()[-1]
    for lay in model.layers:
        units = lay.weight.shape[0] if hasattr(lay, "weight") else 0
        if compact and hasattr(lay, "mask") and lay is not last:
            units = max(int(lay.mask.reshape(units, -1).any(axis=1).sum()), 1)
        if isinstance(lay, Conv2d):
            x = b.conv(lay.name, x, units, lay.kernel, stride=lay.stride, padding=lay.padding)
        elif isinstance(lay, Dense):
            x = b.fc(lay.name, x, units)
        elif isinstance(lay, MaxPool2d):
            x = b.maxpool(lay.name, x, lay.size, lay.size)
        elif isinstance(lay, Flatten):
            x = b.flatten(lay.name, x)
        # ReLU has no cost of its own in hwprune's workload model.
    return b.build(description=spec(model.name).description if model.name in MODELS else "",
                   source="hwprune reference model for the digits data set")
