"""Importance criteria: one small contract, one class per criterion.

A criterion scores the groups of a layer (see :mod:`hwprune.prune.granularity`);
higher means more important, and the pruner keeps the highest-scoring groups::

    class Criterion:
        name: str
        needs_data: bool            # needs statistics from training batches
        splice: bool = False        # pruned weights keep training (network surgery)
        def group_scores(self, layer, groups, stats, rng) -> np.ndarray  # one per group

How each aggregates its members' scores into a group's score:

============= ============================================ ============================
criterion     per weight                                   group score
============= ============================================ ============================
magnitude     ``|w|``                                      RMS of the members (Scalpel
                                                           scores SIMD groups by RMS;
                                                           for one weight it is ``|w|``)
random        --                                           uniform draw per group
activation    ``|w| * E|x|`` (x: the input it multiplies)  sum; for filter/node groups
                                                           the unit's mean output after
                                                           ReLU (Hu et al. 2016)
apoz          ``|w| * (1 - APoZ(x))``                      sum; for filter/node groups
                                                           ``1 - APoZ`` of the unit's
                                                           output (Hu et al. 2016)
taylor        ``g * w`` per batch                          mean over batches of
                                                           ``|sum of members|``: the
                                                           first-order loss change of
                                                           removing the group together
                                                           (Molchanov et al. 2017)
obd           ``h * w^2 / 2``, ``h`` the diagonal Hessian  sum (OBD's saliencies add
              estimate                                     under its diagonal model)
dns           ``|w|``                                      RMS, with two thresholds and
                                                           splicing (Guo et al. 2016)
============= ============================================ ============================

Han et al.'s per-layer threshold ``q * sigma`` is the magnitude criterion's threshold:
:func:`han_threshold` turns a layer's kept density into its ``q`` and back.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..errors import InputError
from ..schemes import scheme
from .granularity import Groups
from .layers import Prunable
from .statistics import LayerStatistics


def _sum(groups: Groups, values: np.ndarray) -> np.ndarray:
    return np.bincount(groups.ids.ravel(), weights=values.ravel(), minlength=groups.count)


def _rms(groups: Groups, values: np.ndarray) -> np.ndarray:
    return np.sqrt(_sum(groups, values.astype(np.float64) ** 2) / groups.sizes)


class Criterion(ABC):
    """The contract (see the module docstring)."""

    name = ""
    needs_data = False
    splice = False
    description = ""

    @abstractmethod
    def group_scores(self, layer: Prunable, groups: Groups, stats: LayerStatistics | None,
                     rng: np.random.Generator, granularity: str) -> np.ndarray:
        """One score per group of ``layer`` (higher = more important)."""


class Magnitude(Criterion):
    name = "magnitude"
    description = "weight magnitude, group RMS (Han et al. 2015; Scalpel)"

    def group_scores(self, layer, groups, stats, rng, granularity):
        return _rms(groups, layer.weight)


class Random(Criterion):
    name = "random"
    description = "uniform random score per group (the baseline)"

    def group_scores(self, layer, groups, stats, rng, granularity):
        return rng.random(groups.count)


class _ActivationCriterion(Criterion):
    """Shared shape of the activation criteria: a unit score for whole filters/nodes,
    else ``|w|`` times a factor of the input each weight multiplies, summed per group."""

    needs_data = True

    @abstractmethod
    def unit_scores(self, stats: LayerStatistics) -> np.ndarray:
        """One score per output unit, for filter and node groups."""

    @abstractmethod
    def input_factor(self, stats: LayerStatistics) -> np.ndarray:
        """One factor per weight-row position, multiplying ``|w|``."""

    def group_scores(self, layer, groups, stats, rng, granularity):
        if scheme(granularity).removes_units:
            return self.unit_scores(stats)[groups.row_of]
        rows = np.abs(layer.rows()) * self.input_factor(stats)[None, :]
        return _sum(groups, rows.reshape(layer.weight.shape))


class MeanActivation(_ActivationCriterion):
    name = "activation"
    description = "mean activation: |w| E|x| per weight; unit output mean for filter/node"

    def unit_scores(self, stats):
        return stats.output_mean

    def input_factor(self, stats):
        return stats.input_abs_mean


class APoZ(_ActivationCriterion):
    name = "apoz"
    description = "average percentage of zeros: |w| (1 - APoZ of its input); unit 1 - APoZ"

    def unit_scores(self, stats):
        return 1.0 - stats.output_zero_fraction

    def input_factor(self, stats):
        return 1.0 - stats.input_zero_fraction


class Taylor(Criterion):
    name = "taylor"
    needs_data = True
    description = "first-order Taylor: mean over batches of |sum of g w| (Molchanov 2017)"

    def group_scores(self, layer, groups, stats, rng, granularity):
        per_batch = np.stack([_sum(groups, t) for t in stats.taylor])
        return np.abs(per_batch).mean(axis=0)


class OBD(Criterion):
    name = "obd"
    needs_data = True
    description = "optimal brain damage saliency h w^2 / 2, diagonal Fisher (LeCun 1990)"

    def group_scores(self, layer, groups, stats, rng, granularity):
        return _sum(groups, stats.fisher * layer.weight.astype(np.float64) ** 2 / 2.0)


class DNS(Magnitude):
    """Dynamic network surgery: magnitude scores with two thresholds around the target
    (``a = t (1 - band)``, ``b = t (1 + band)``): groups scoring below ``a`` are cut,
    above ``b`` spliced back, in between they keep their state; pruned weights keep
    being updated while training (splicing)."""

    name = "dns"
    splice = True
    band = 0.1
    description = "dynamic network surgery: two magnitude thresholds, splicing (Guo 2016)"


CRITERIA: dict[str, Criterion] = {c.name: c for c in
                                  (Magnitude(), Random(), MeanActivation(), APoZ(), Taylor(), OBD(),
                                   DNS())}


def criterion(name: str) -> Criterion:
    try:
        return CRITERIA[name]
    except KeyError:
        raise InputError(f"unknown criterion {name!r}; accepted: " + ", ".join(CRITERIA)) from None


def han_threshold(weight: np.ndarray, mask: np.ndarray) -> float:
    """Han et al.'s quality parameter ``q`` of a magnitude-pruned layer: the smallest
    kept ``|w|`` over the standard deviation of the layer's weights (before pruning,
    pass the dense weights)."""
    sigma = float(np.std(weight))
    if not mask.any() or sigma == 0:
        return float("nan")
    return float(np.abs(weight[mask]).min() / sigma)


def han_mask(weight: np.ndarray, q: float) -> np.ndarray:
    """Han et al.'s per-layer rule: keep the weights with ``|w| >= q * sigma``."""
    if q < 0:
        raise InputError(f"q must be >= 0, got {q}")
    return np.abs(weight) >= q * float(np.std(weight))
