"""Scalpel's policy (Yu et al., ISCA 2017), derived from hwprune's simulators.

For a reference model, a device and an accuracy tolerance, choose per layer among
dense, SIMD-aware weight pruning (groups of ``g`` = the device's SIMD width), node
pruning and fine-grained pruning:

1. **What each scheme can reach.** Each candidate prunes the trained model (magnitude
   criterion, group RMS for SIMD groups as in Scalpel, with AGP retraining) at
   decreasing uniform densities; the lowest density whose test accuracy stays within
   ``tolerance`` of the dense model's is the scheme's achievable density (node: the
   fraction of units kept). Layers a SIMD group does not fit stay dense in that
   candidate. *Simplification:* one density per scheme for all layers, where Scalpel
   searches per layer.
2. **What it buys on the device.** Per layer, the latency simulator gives the scheme's
   latency at that layer's reached density and its break-even density; the energy
   model gives its energy (node pruning: the physically smaller dense network).
3. **Choice.** :func:`hwprune.studies.choice.choose`: a scheme that does not beat
   dense latency is out; of the rest the fastest wins (ties: lower energy); a layer
   with none stays dense. The class layer cannot be node-pruned (its outputs are the
   classes), though it loses the inputs of removed units before it.
4. **Check.** The model is pruned with the mixed choice and retrained. The mix can
   lose more accuracy than each scheme alone; then every pruned layer backs off one
   grid step, up to three times, and the final accuracy is reported beside the
   tolerance either way. The table is the final model's as deployed
   (:mod:`hwprune.studies.deployed`), settled again (a scheme that the mix made
   slower than dense runs dense), so every column and reason comes from one
   :class:`~hwprune.evaluate.Evaluation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from ..checks import check_tolerance
from ..evaluate import evaluate
from ..hardware.profile import DeviceProfile
from ..latency.work import KernelShape
from ..prune import models
from ..prune.model import Model
from ..prune.schedules import prune
from ..schemes import DENSE, FINE, NODE, SIMD, Scheme
from .choice import Choice, Option, choose, settle
from .deployed import plan_of
from .recommend import fits

CANDIDATES: tuple[Scheme, ...] = (FINE, SIMD, NODE)
DENSITY_GRID = (0.7, 0.5, 0.35, 0.25, 0.18, 0.12, 0.08, 0.05)
SEARCH_EPOCHS = 8
MAX_BACKOFF = 3


def _step_up(d: float) -> float:
    """The next grid density above ``d`` (1 above the grid's top)."""
    higher = [x for x in DENSITY_GRID if x > d + 1e-9]
    return min(higher) if higher else 1.0


@dataclass(frozen=True)
class ScalpelResult:
    """``choice``: the settled choice of the final model as deployed
    (:class:`~hwprune.studies.choice.Choice`); ``layers``: its table (columns in
    :meth:`Choice.table`, candidates ``fine``, ``simd``, ``node``); ``search``: the
    accuracy of every (scheme, density) tried; ``pruned``: the final model; ``schemes``:
    the scheme each layer was pruned with (a layer whose scheme the settling dropped
    keeps its pruned weights but runs dense: ``choice.plan`` says how each layer runs).
    Accuracies are fractions of the test set."""

    model: str
    device: str
    group: int
    tolerance: float
    dense_accuracy: float
    final_accuracy: float
    choice: Choice
    search: pd.DataFrame
    pruned: Model
    schemes: dict

    @property
    def layers(self) -> pd.DataFrame:
        return self.choice.table()


def _candidate_plan(model: Model, s: Scheme, g: int) -> tuple[dict, dict]:
    """Per-layer granularity and group width of a candidate; a SIMD group that does not
    fit a layer leaves it dense (fine at density 1)."""
    gran, group = {}, {}
    for lay in model.prunable():
        if s is SIMD:
            row = int(np.prod(lay.weight.shape[1:]))
            gran[lay.name], group[lay.name] = (SIMD, g) if g <= row else (FINE, None)
        else:
            gran[lay.name], group[lay.name] = s, None
    return gran, group


def _search(name: str, s: Scheme, g: int, tolerance: float, seed: int, dense_acc: float,
            progress=None):
    """Lowest grid density within tolerance; returns (density, pruned model, rows).
    Cached per process (the search does not depend on the device beyond ``g``)."""
    if progress:
        progress(f"{name}: how far {s.name}{f' (g={g})' if s is SIMD else ''} prunes "
                 f"within the tolerance ...")
    return _search_cached(name, s.name, g, tolerance, seed, dense_acc)


@lru_cache(maxsize=64)
def _search_cached(name: str, scheme_name: str, g: int, tolerance: float, seed: int,
                   dense_acc: float):
    s = {c.name: c for c in CANDIDATES}[scheme_name]
    rows, best = [], (1.0, None)
    for d in DENSITY_GRID:
        model, data = models.trained(name, seed)
        gran, group = _candidate_plan(model, s, g)
        density = {n: (d if gran[n] is s else 1.0) for n in gran}
        result = prune(model, data, "magnitude", gran, density, "agp", group, SEARCH_EPOCHS,
                       models.spec(name).recipe, seed)
        ok = result.accuracy_after >= dense_acc - tolerance
        rows.append({"scheme": s.name, "density": d, "accuracy": result.accuracy_after,
                     "within": ok})
        if not ok:
            break
        best = (d, result.model)
    return best[0], best[1], rows


def _reached(pruned: Model | None, s: Scheme, lname: str) -> float:
    """The density scheme ``s`` reached on layer ``lname`` in its search (units kept
    for node pruning)."""
    if pruned is None:
        return 1.0
    mask = pruned.layer(lname).mask
    if s.removes_units:
        return float(mask.reshape(mask.shape[0], -1).any(axis=1).mean())
    return float(mask.mean())


def scalpel(name: str, dev: DeviceProfile, tolerance: float = 0.01, seed: int = 0,
            progress=None) -> ScalpelResult:
    """Run the policy on reference model ``name`` for device ``dev`` (module doc)."""
    tolerance = check_tolerance(tolerance)
    g = max(int(dev.compute.simd_lanes), 1)
    base, data = models.trained(name, seed)
    dense_acc = base.accuracy(data.x_test, data.y_test)
    net = models.to_network(base)
    reached, searches = {}, []
    for s in CANDIDATES:
        _, pruned, rows = _search(name, s, g, tolerance, seed, dense_acc, progress)
        searches += rows
        reached[s] = pruned
    last = net.weighted_layers[-1].name
    candidates = {}
    for lay in net.weighted_layers:
        shape = KernelShape.of(lay)
        candidates[lay.name] = [Option(s, _reached(reached[s], s, lay.name)) for s in CANDIDATES
                                if fits(s, shape, g, lay.name == last)]
    first = choose(net, dev, candidates)
    choice_gran, choice_group, choice_density = {}, {}, {}
    for lay in base.prunable():
        lp = first.plan[lay.name]
        choice_gran[lay.name] = lp.scheme if lp.scheme.prunes else FINE
        choice_group[lay.name] = g if lp.scheme is SIMD else None
        choice_density[lay.name] = lp.density
    # The mix can lose more than each scheme alone: back off one grid step per try.
    tries = 0
    while True:
        model, data = models.trained(name, seed)
        final = prune(model, data, "magnitude", choice_gran, choice_density, "agp", choice_group,
                      SEARCH_EPOCHS, models.spec(name).recipe, seed)
        if final.accuracy_after >= dense_acc - tolerance or tries == MAX_BACKOFF:
            break
        tries += 1
        choice_density = {n: _step_up(d) for n, d in choice_density.items()}
        if progress:
            progress(f"{name}: the mix lost {dense_acc - final.accuracy_after:.4f}; backing off "
                     f"one density step (try {tries} of {MAX_BACKOFF})")
    schemes = {n: (first.plan[n].scheme if first.plan[n].scheme.prunes else DENSE)
               for n in choice_gran}
    net_final, plan = plan_of(final.model, schemes)
    plan, notes = settle(net_final, dev, plan)
    choice = Choice(plan, evaluate(net_final, dev, plan), first.dense, first.options, notes,
                    first.here)
    return ScalpelResult(name, dev.id, g, tolerance, dense_acc, final.accuracy_after, choice,
                         pd.DataFrame(searches), final.model, schemes)
