"""What a pruning policy needs from a model: one small contract, one adapter per model kind.

Every policy (:mod:`.schedules`, :mod:`.pruner`, :mod:`hwprune.studies.sensitivity`) is
written once against :class:`ModelAdapter`; an adapter wraps one kind of model:

* :class:`NumpyAdapter`: hwprune's numpy reference :class:`~.model.Model` with its
  :class:`~.data.Dataset` and training recipe (the dependency-light default);
* :class:`hwprune.prune.torch_model.TorchAdapter`: any ``torch.nn.Module`` plus an
  example input and the user's callbacks or loaders (torch is imported only there).

The contract::

    class ModelAdapter:
        name: str
        def prunable(self) -> list[LayerView]    # execution order; .name .weight .mask .rows()
        def set_masks(self, masks)                # {layer: bool array}; zeroes pruned weights
        def consumer_masks(self, name, keep)      # node pruning: masks of the layers reading name
        def unit_couplings(self)                  # node pruning: layers that lose units together
        def statistics(self, seed)                # {layer: LayerStatistics}, data-driven criteria
        def evaluate(self) -> float               # higher is better (accuracy, fraction)
        def finetune(self, epochs, lr_scale, seed, on_step=None)
        def steps_per_epoch(self) -> int          # the unit of on_step(step, total)
        def set_splice(self, splice)              # dynamic network surgery
        def state(self) / load_state(state)       # weights and masks, to undo a trial
        def network(self) -> Network              # for the cost models
        def require(self, criterion, epochs)      # InputError now if a run would need more

    and, for energy-aware pruning (its least-squares re-fit)::

        def sample_inputs(self, n, seed)          # n training inputs, the model's own batch type
        def layer_inputs(self, x)                 # {layer: input rows (samples, row length)}
        def set_weights(self, weights)            # {layer: stored weights}, numpy

A ``LayerView`` is what a criterion reads (:class:`~.layers.Prunable` is one): ``name``,
``weight`` (numpy, ``(out, in)`` or ``(out, in, kh, kw)``, the stored weights with
pruned ones zero), ``mask`` (bool, the weight's shape) and ``rows()`` (the weight as
one row per output unit).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Callable, Mapping, Protocol

import numpy as np

from ..errors import InputError
from ..workload.network import Network
from .data import Dataset
from .model import Model, expand_units
from .statistics import LayerStatistics, collect
from .trainer import TrainConfig, train

StepHook = Callable[[int, int], None]   # (step, total steps) -> None; may change masks


class LayerView(Protocol):
    name: str
    weight: np.ndarray
    mask: np.ndarray

    def rows(self) -> np.ndarray: ...


class ModelAdapter(ABC):
    """The contract (see the module docstring)."""

    name: str = "model"
    kind: str = ""

    @abstractmethod
    def prunable(self) -> list[LayerView]:
        """The prunable layers in execution order."""

    def layer(self, name: str) -> LayerView:
        for lay in self.prunable():
            if lay.name == name:
                return lay
        raise InputError(f"model {self.name!r} has no prunable layer {name!r}; its layers: "
                         + ", ".join(lay.name for lay in self.prunable()))

    @abstractmethod
    def set_masks(self, masks: Mapping[str, np.ndarray]) -> None:
        """Set the named layers' masks (bool, each weight's shape); unless splicing, the
        pruned weights are zeroed as well."""

    @abstractmethod
    def consumer_masks(self, name: str, keep_units: np.ndarray) -> dict[str, np.ndarray]:
        """Node pruning: for each prunable layer that reads ``name``'s output units, the
        mask of its weights that read a kept unit (``keep_units``: a bool per unit)."""

    def check_consumers(self, name: str) -> None:
        """Raise :class:`InputError` if ``name``'s units cannot be node-pruned."""

    def unit_couplings(self) -> list[tuple[str, ...]]:
        """Groups of prunable layers whose output units must be removed together (a
        residual add's inputs, a depthwise conv and its producer); a layer in none is
        alone. The reference models have none."""
        return []

    @abstractmethod
    def statistics(self, seed: int) -> dict[str, LayerStatistics]:
        """Activation, gradient and curvature statistics per prunable layer."""

    @abstractmethod
    def evaluate(self) -> float:
        """The model's score, higher is better (accuracy as a fraction by default)."""

    @abstractmethod
    def finetune(self, epochs: int, lr_scale: float, seed: int, on_step: StepHook | None = None) -> None:
        """Train ``epochs`` with the masks held; ``on_step(step, total)`` runs before each
        step (a step: one batch, or one epoch where only a callback trains)."""

    @abstractmethod
    def steps_per_epoch(self) -> int:
        """How many ``on_step`` calls one epoch makes."""

    @abstractmethod
    def set_splice(self, splice: bool) -> None:
        """Dynamic network surgery: pruned weights keep training (True) or stay zero."""

    @abstractmethod
    def state(self):
        """An opaque copy of the weights and masks (for :meth:`load_state`)."""

    @abstractmethod
    def load_state(self, state) -> None:
        """Restore what :meth:`state` returned."""

    @abstractmethod
    def network(self) -> Network:
        """The model as a hwprune workload, for the energy and latency models."""

    def require(self, criterion, epochs: int) -> None:
        """Raise :class:`InputError` now if pruning with ``criterion`` and ``epochs`` of
        fine-tuning needs something this model was not given."""

    def sample_inputs(self, n: int, seed: int):
        """Up to ``n`` training inputs as one batch of the model's own kind (numpy array,
        torch tensor), for :meth:`layer_inputs`."""
        raise InputError(f"model {self.name!r} ({type(self).__name__}) gives no training inputs")

    def layer_inputs(self, x) -> dict[str, np.ndarray]:
        """Each prunable layer's input on the batch ``x`` (from :meth:`sample_inputs`), as
        rows ``(samples x output positions, row length)`` float64: im2col columns for a
        convolution, in the order of ``weight.reshape(out, -1)``'s columns."""
        raise InputError(f"model {self.name!r} ({type(self).__name__}) gives no layer inputs")

    def set_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Overwrite the named layers' stored weights (numpy, each weight's shape); the
        masks are left as they are (call :meth:`set_masks` after)."""
        raise InputError(f"model {self.name!r} ({type(self).__name__}) cannot take new weights")

    @property
    def model(self):
        """The wrapped model object (a numpy :class:`~.model.Model`, an ``nn.Module``)."""
        return None

    def densities(self) -> dict[str, float]:
        """Kept fraction of each prunable layer's weights."""
        return {lay.name: float(lay.mask.mean()) for lay in self.prunable()}

    def weight_count(self) -> tuple[int, int]:
        """(kept weights, all weights) over the prunable layers."""
        layers = self.prunable()
        return sum(int(lay.mask.sum()) for lay in layers), sum(lay.mask.size for lay in layers)


class NumpyAdapter(ModelAdapter):
    """A reference :class:`~.model.Model` (pruned in place) with its data and recipe.

    ``data`` may be None for policies that need neither training nor statistics."""

    kind = "numpy"

    def __init__(self, model: Model, data: Dataset | None = None, recipe: TrainConfig | None = None):
        self._model, self.data, self.recipe = model, data, recipe or TrainConfig()
        self.name = model.name

    @property
    def model(self) -> Model:
        return self._model

    def prunable(self):
        return self._model.prunable()

    def set_masks(self, masks):
        for lay in self._model.prunable():
            if lay.name in masks:
                lay.mask = np.ascontiguousarray(masks[lay.name])
                if not lay.splice:
                    lay.apply_mask()

    def consumer_masks(self, name, keep_units):
        nxt = self._model.next_prunable(name)
        return {} if nxt is None else {nxt.name: expand_units(nxt, keep_units)}

    def _data(self, what: str) -> Dataset:
        if self.data is None:
            raise InputError(f"{what} needs the model's training data")
        return self.data

    def statistics(self, seed):
        return collect(self._model, self._data("statistics"), seed=seed)

    def evaluate(self):
        data = self._data("evaluating")
        return self._model.accuracy(data.x_test, data.y_test)

    def finetune(self, epochs, lr_scale, seed, on_step=None):
        r = self.recipe
        tune = TrainConfig(epochs=epochs, batch_size=r.batch_size, lr=r.lr * lr_scale,
                           momentum=r.momentum, weight_decay=r.weight_decay)
        train(self._model, self._data("fine-tuning"), tune, seed, on_step)

    def steps_per_epoch(self):
        return math.ceil(self._data("fine-tuning").x_train.shape[0] / self.recipe.batch_size)

    def set_splice(self, splice):
        self._model.set_splice(splice)

    def state(self):
        return self._model.state()

    def load_state(self, state):
        self._model.load_state(state)

    def network(self):
        from .models import to_network

        return to_network(self._model)

    def sample_inputs(self, n, seed):
        x = self._data("sampling inputs").x_train
        rng = np.random.default_rng(seed)
        return x[rng.choice(x.shape[0], size=min(n, x.shape[0]), replace=False)]

    def layer_inputs(self, x):
        self._model.forward(x)
        return {lay.name: lay.last_input.astype(np.float64) for lay in self._model.prunable()}

    def set_weights(self, weights):
        for lay in self._model.prunable():
            if lay.name in weights:
                w = np.asarray(weights[lay.name])
                if w.shape != lay.weight.shape:
                    raise InputError(f"{lay.name}: weight shape {w.shape} does not match "
                                     f"{lay.weight.shape}")
                lay.weight = w.astype(np.float32)


def as_adapter(model, data: Dataset | None = None, recipe: TrainConfig | None = None) -> ModelAdapter:
    """``model`` if it is an adapter, else a numpy :class:`~.model.Model` wrapped with
    ``data`` and ``recipe``; anything else is an :class:`InputError`."""
    if isinstance(model, ModelAdapter):
        if data is not None:
            raise InputError("an adapter carries its own data; pass data=None with it")
        return model
    if isinstance(model, Model):
        return NumpyAdapter(model, data, recipe)
    raise InputError(f"model must be a hwprune reference Model or a ModelAdapter, got "
                     f"{type(model).__name__} (a torch module goes through "
                     "hwprune.prune.torch_model.TorchAdapter or hwprune.api.prune)")
