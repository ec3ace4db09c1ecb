"""Pruning schedules: when to prune how much, and how to retrain in between.

* ``oneshot``: prune every layer to its target once, then fine-tune ``epochs``.
* ``iterative`` (Han et al. 2015): ``rounds`` rounds of prune-then-retrain; the density
  of round ``i`` is ``target ** (i / rounds)``, so each round removes the same
  fraction of what is left; ``epochs`` are split over the rounds.
* ``agp`` (Zhu & Gupta 2017, automated gradual pruning): train ``epochs`` while the
  density follows the cubic ``d(p) = d_f + (1 - d_f) (1 - p)^3``, ``p`` going from 0
  to 1 over the first 75% of the steps, masks updated every half epoch.

With the ``dns`` criterion every schedule trains with splicing and updates its masks
with two thresholds every half epoch; at the end an exact cut at the target fixes the
masks and one more epoch fine-tunes with them fixed.

Fine-tuning uses the model's own recipe at a third of its learning rate.

The schedules run on a :class:`~.adapter.ModelAdapter` (a numpy reference model with
its data, or a torch module): one code path for both. A step of ``on_step`` is one
batch; where a user's ``finetune`` callback trains, it is one epoch (AGP then updates
its masks once per epoch, and needs 2 epochs or more to prune gradually; with fewer it
prunes to the target once, after training).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pandas as pd

from ..checks import check_count
from ..errors import InputError
from .adapter import ModelAdapter, as_adapter
from .criteria import criterion as get_criterion
from .criteria import han_threshold
from .data import Dataset
from .model import Model
from .pruner import Granularity, Group, check_fits, per_layer, prune_to, targets_for
from .trainer import TrainConfig

SCHEDULES = ("oneshot", "iterative", "agp")
FINE_TUNE_LR = 1 / 3
ROUNDS = 4
AGP_END = 0.75


@dataclass(frozen=True)
class PruneResult:
    """A pruned model, its accuracy (fraction of the test set) before and after, and
    ``layers``: one row per prunable layer with columns ``layer``, ``weights``,
    ``kept``, ``target`` and ``density`` (kept / weights, fraction), ``units_kept``
    (output units with any weight kept), ``q`` (magnitude: Han's threshold over sigma
    of the dense weights, else NaN). ``model`` is the pruned model object (a numpy
    :class:`~.model.Model`, or the torch module, pruned in place); ``adapter`` the
    :class:`~.adapter.ModelAdapter` that wraps it. Accuracy is whatever the adapter's
    ``evaluate`` returns (a user's score for a torch model)."""

    model: object
    accuracy_before: float
    accuracy_after: float
    layers: pd.DataFrame
    settings: dict = field(default_factory=dict)
    adapter: ModelAdapter | None = None


def check_request(model: Model | ModelAdapter, criterion: str, granularity: Granularity, density,
                  schedule: str, group: Group, epochs: int) -> dict[str, float]:
    """Raise :class:`InputError` for anything :func:`prune` would reject, before any
    training; returns the per-layer targets."""
    get_criterion(criterion)
    per_layer(model, granularity, group)
    if schedule not in SCHEDULES:
        raise InputError(f"unknown schedule {schedule!r}; accepted: " + ", ".join(SCHEDULES))
    check_count(epochs, "epochs")
    check_fits(model, granularity, group)
    if isinstance(model, ModelAdapter):
        model.require(get_criterion(criterion), epochs)
    return targets_for(model, density, granularity)


def prune(model: Model | ModelAdapter, data: Dataset | None, criterion: str,
          granularity: Granularity, density, schedule: str = "oneshot",
          group: Group = None, epochs: int = 10, recipe: TrainConfig | None = None,
          seed: int = 0) -> PruneResult:
    """Prune a trained ``model`` (in place) and return the result (see module doc).

    ``model``: a numpy reference :class:`~.model.Model` with its ``data`` and
    ``recipe``, or a :class:`~.adapter.ModelAdapter` (``data`` and ``recipe`` None)."""
    crit = get_criterion(criterion)
    adapter = as_adapter(model, data, recipe)
    targets = check_request(adapter, criterion, granularity, density, schedule, group, epochs)
    rng = np.random.default_rng(seed)
    dense = {lay.name: lay.weight.copy() for lay in adapter.prunable()}
    before = adapter.evaluate()
    band = crit.band if crit.splice else 0.0
    adapter.set_splice(crit.splice)
    pruned = [False]

    def step(t: dict[str, float]) -> None:
        pruned[0] = True
        prune_to(adapter, crit, granularity, t, None, rng, group, band=band)

    def surgery_hook(every: int):
        def hook(s: int, total: int) -> None:
            if s and s % every == 0:
                step(targets)
        return hook

    per_epoch = adapter.steps_per_epoch() if epochs else 1
    half = max(per_epoch // 2, 1)
    if schedule == "oneshot":
        step(targets)
        adapter.finetune(epochs, FINE_TUNE_LR, seed, surgery_hook(half) if crit.splice else None)
    elif schedule == "iterative":
        for r in range(1, ROUNDS + 1):
            step({n: d ** (r / ROUNDS) for n, d in targets.items()})
            share = epochs // ROUNDS + (1 if r <= epochs % ROUNDS else 0)
            adapter.finetune(share, FINE_TUNE_LR, seed + r,
                             surgery_hook(half) if crit.splice else None)
    else:
        def agp(s: int, total: int) -> None:
            end = max(int(AGP_END * total), 1)
            if s % half or s > end:
                return
            p = min(s / end, 1.0)
            if p > 0:
                pruned[0] = True
            prune_to(adapter, crit, granularity, {n: d + (1 - d) * (1 - p) ** 3
                                                  for n, d in targets.items()},
                     None, rng, group, band=band)
        adapter.finetune(epochs, FINE_TUNE_LR, seed, agp)
        if epochs == 0 or not pruned[0]:
            # No training, or too few steps to reach a positive p: one cut to the target.
            step(targets)
    if crit.splice:
        # Fix the masks with an exact cut, stop splicing, settle one epoch.
        adapter.set_splice(False)
        prune_to(adapter, crit, granularity, targets, None, rng, group, band=0.0)
        adapter.set_masks({lay.name: lay.mask for lay in adapter.prunable()})
        adapter.finetune(1 if epochs else 0, FINE_TUNE_LR, seed + 99)
    after = adapter.evaluate()
    rows = []
    for lay in adapter.prunable():
        units = lay.mask.reshape(lay.mask.shape[0], -1).any(axis=1)
        rows.append({"layer": lay.name, "weights": int(lay.mask.size), "kept": int(lay.mask.sum()),
                     "target": targets[lay.name], "density": float(lay.mask.mean()),
                     "units_kept": int(units.sum()), "units": int(units.size),
                     "q": han_threshold(dense[lay.name], lay.mask) if criterion == "magnitude"
                     else float("nan")})
    settings = {"criterion": criterion,
                "granularity": (str(granularity) if not isinstance(granularity, Mapping)
                                else {k: str(v) for k, v in granularity.items()}),
                "group": group if not isinstance(group, dict) else dict(group),
                "density": density if not isinstance(density, dict) else dict(density),
                "schedule": schedule, "epochs": epochs, "seed": seed}
    return PruneResult(adapter.model, before, after, pd.DataFrame(rows), settings, adapter)
