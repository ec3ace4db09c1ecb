"""A sequential model of :mod:`hwprune.prune.layers`, with its prunable layers by name."""

from __future__ import annotations

import copy

import numpy as np

from ..errors import InputError, UnknownNameError
from .layers import Layer, Prunable, softmax_cross_entropy


class Model:
    """Layers run in order; the last one outputs class logits.

    Args:
        name: the model's name (``digits-mlp``, ...).
        layers: the layers, first to last.
        input_shape: one sample's shape, e.g. ``(1, 8, 8)``.
    """

    def __init__(self, name: str, layers: list[Layer], input_shape: tuple[int, ...]):
        self.name = name
        self.layers = list(layers)
        self.input_shape = tuple(input_shape)
        names = [lay.name for lay in self.layers]
        if len(set(names)) != len(names):
            raise InputError(f"model {name!r}: layer names must be unique, got {names}")

    # -- passes ------------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.shape[1:] != self.input_shape:
            x = x.reshape((x.shape[0], *self.input_shape))
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad: np.ndarray) -> None:
        for layer in reversed(self.layers):
            grad = layer.backward(grad)

    def loss_and_backward(self, x: np.ndarray, y: np.ndarray) -> float:
        """Forward, mean cross-entropy, backward; gradients land in the layers."""
        loss, grad = softmax_cross_entropy(self.forward(x), y)
        self.backward(grad)
        return loss

    def predict(self, x: np.ndarray, batch: int = 1024) -> np.ndarray:
        return np.concatenate([self.forward(x[i:i + batch]).argmax(axis=1)
                               for i in range(0, x.shape[0], batch)])

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        """Fraction of ``x`` classified as ``y``."""
        return float((self.predict(x) == y).mean())

    # -- prunable layers ---------------------------------------------------------
    def prunable(self) -> list[Prunable]:
        return [lay for lay in self.layers if isinstance(lay, Prunable)]

    def layer(self, name: str) -> Prunable:
        for lay in self.prunable():
            if lay.name == name:
                return lay
        raise UnknownNameError(f"model {self.name!r} has no prunable layer {name!r}; its layers: "
                               + ", ".join(lay.name for lay in self.prunable()))

    def next_prunable(self, name: str) -> Prunable | None:
        """The prunable layer that consumes ``name``'s outputs (None for the last)."""
        layers = self.prunable()
        i = [lay.name for lay in layers].index(self.layer(name).name)
        return layers[i + 1] if i + 1 < len(layers) else None

    def densities(self) -> dict[str, float]:
        """Kept fraction of each prunable layer's weights."""
        return {lay.name: float(lay.mask.mean()) for lay in self.prunable()}

    def weight_count(self) -> tuple[int, int]:
        """(kept weights, all weights) over the prunable layers."""
        kept = sum(int(lay.mask.sum()) for lay in self.prunable())
        return kept, sum(lay.mask.size for lay in self.prunable())

    def set_splice(self, splice: bool) -> None:
        for lay in self.prunable():
            lay.splice = splice

    # -- state -------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        """Weights, biases and masks as ``{"<layer>.weight": ..., ".bias", ".mask"}``."""
        out = {}
        for lay in self.prunable():
            out[f"{lay.name}.weight"] = lay.weight.copy()
            out[f"{lay.name}.bias"] = lay.bias.copy()
            out[f"{lay.name}.mask"] = lay.mask.copy()
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        for lay in self.prunable():
            for key in ("weight", "bias", "mask"):
                arr = state[f"{lay.name}.{key}"]
                if arr.shape != getattr(lay, key).shape:
                    raise InputError(f"{lay.name}.{key}: shape {arr.shape} does not match "
                                     f"the model's {getattr(lay, key).shape}")
                setattr(lay, key, arr.astype(getattr(lay, key).dtype, copy=True))

    def copy(self) -> "Model":
        """A deep copy (weights, masks, no shared state)."""
        return copy.deepcopy(self)


def expand_units(consumer: Prunable, keep_units: np.ndarray) -> np.ndarray:
    """The mask of ``consumer``'s weights that read the kept output units of the layer
    before it (``keep_units``: one bool per unit). A dense layer after a flatten reads
    each channel as a contiguous run of positions (channel-major flattening)."""
    units = keep_units.shape[0]
    row = consumer.weight.shape[1]
    if consumer.weight.ndim == 4:
        if row != units:
            raise InputError(f"{consumer.name}: reads {row} channels, not {units}")
        return np.broadcast_to(keep_units[None, :, None, None], consumer.weight.shape)
    if row % units:
        raise InputError(f"{consumer.name}: its {row} inputs are not a whole number of "
                         f"positions per unit of the {units} units before it")
    return np.broadcast_to(np.repeat(keep_units, row // units)[None, :], consumer.weight.shape)
