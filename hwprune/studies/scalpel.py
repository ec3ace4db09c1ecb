"""Scalpel's policy (Yu et al., ISCA 2017), derived from hwprune's simulators.

For a reference model, a device and an accuracy tolerance, choose per layer among
dense, SIMD-aware weight pruning (groups of ``g`` = the device's SIMD width), node
pruning and fine-grained pruning:

1. **What each scheme can reach.** Each candidate (fine, SIMD, node, and the schemes
   the device's hardware is built for: its N:M patterns and node pruning rounded to
   its channel multiple, :func:`~hwprune.latency.network.accelerated_schemes`) prunes
   the trained model (magnitude criterion, group RMS for SIMD groups as in Scalpel,
   with AGP retraining) at decreasing uniform densities; the lowest density whose test accuracy stays within
   ``tolerance`` of the dense model's is the scheme's achievable density (node: the
   fraction of units kept; an N:M pattern is tried once, at its own density ``N / M``,
   and is no candidate where that loses more than the tolerance). Layers a SIMD group
   does not fit stay dense in that candidate. *Simplification:* one density per
   scheme for all layers, where Scalpel searches per layer.
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

**Any model.** The policy runs on a reference model name or on a
:class:`~hwprune.prune.adapter.ModelAdapter` (a torch module with its evaluation and
fine-tuning): every trial starts from the trained state (:class:`Trained`), the
accuracies are the adapter's ``evaluate``, the network is the adapter's. On a torch
module, a layer whose units reach a concatenation is not offered node pruning, and
layers coupled through a residual add or a depthwise convolution (which must lose the
same units: the adapter's ``unit_couplings``) are searched with node pruning together
and take it in the mix together or not at all (:func:`~.choice.choose` weighs the
group as one move).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from ..checks import check_tolerance
from ..errors import InputError
from ..evaluate import evaluate
from ..hardware.profile import DeviceProfile
from ..latency.network import accelerated_schemes
from ..prune.adapter import ModelAdapter
from ..prune.schedules import prune
from ..schemes import DENSE, FINE, NODE, SIMD, Scheme, scheme
from ..workload.coupling import Couplings
from .choice import Choice, Option, choose, settle
from .deployed import plan_of
from .recommend import fits
from .trained import Trained

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
    accuracy of every (scheme, density) tried; ``pruned``: the final model (a reference
    :class:`~hwprune.prune.model.Model`, or the torch module, pruned); ``schemes``:
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
    pruned: object
    schemes: dict

    @property
    def layers(self) -> pd.DataFrame:
        return self.choice.table()


def _fits_node(adapter: ModelAdapter, name: str) -> bool:
    """Whether node pruning may remove ``name``'s units in a per-layer mix: not where
    the adapter refuses it (a torch layer whose units reach a concatenation, a coupled
    group that reaches an output). Layers coupled with others (a residual add, a
    depthwise conv) take it together or not at all (:func:`~.choice.choose`)."""
    try:
        adapter.check_consumers(name)
    except InputError:
        return False
    return True


def _candidate_plan(adapter: ModelAdapter, s: Scheme, g: int) -> tuple[dict, dict]:
    """Per-layer granularity and group width of a candidate; a SIMD group that does not
    fit a layer, or node pruning where the adapter refuses it (a torch layer whose
    units reach a concatenation), leaves it dense (fine at density 1)."""
    gran, group = {}, {}
    blocked = set()
    if s.removes_units:
        for lay in adapter.prunable():
            try:
                adapter.check_consumers(lay.name)
            except InputError:
                blocked.add(lay.name)
        for grp in adapter.unit_couplings():          # a coupled group goes together
            if blocked & set(grp):
                blocked |= set(grp)
    for lay in adapter.prunable():
        if s is SIMD:
            row = int(np.prod(lay.weight.shape[1:]))
            gran[lay.name], group[lay.name] = (SIMD, g) if g <= row else (FINE, None)
        elif lay.name in blocked:
            gran[lay.name], group[lay.name] = FINE, None
        else:
            gran[lay.name], group[lay.name] = s, None
    return gran, group


def _search(start: Trained, s: Scheme, g: int, tolerance: float, dense_acc: float,
            epochs: int, progress=None):
    """Lowest grid density within tolerance; returns (density, {layer: mask} of the
    pruned model or None, rows). Cached per process for a reference model, in
    ``start.memo`` for an adapter (the search does not depend on the device beyond ``g``,
    and only SIMD's does on ``g``)."""
    if progress:
        progress(f"{start.name}: how far {s.name}{f' (g={g})' if s is SIMD else ''} prunes "
                 f"within the tolerance ...")
    g = g if s is SIMD else 0                  # only SIMD groups depend on the device
    if start.reference:
        return _search_cached(start.name, s.name, g, tolerance, start.seed, dense_acc, epochs,
                              tuple(DENSITY_GRID))
    key = (s.name, g, tolerance, dense_acc, epochs, tuple(DENSITY_GRID))
    if key not in start.memo:
        start.memo[key] = _run_search(start, s, g, tolerance, dense_acc, epochs)
    return start.memo[key]


@lru_cache(maxsize=64)
def _search_cached(name: str, scheme_name: str, g: int, tolerance: float, seed: int,
                   dense_acc: float, epochs: int, grid: tuple):
    return _run_search(Trained(name, seed), scheme(scheme_name), g, tolerance, dense_acc, epochs)


def _run_search(start: Trained, s: Scheme, g: int, tolerance: float, dense_acc: float,
                epochs: int):
    rows, best = [], (1.0, None)
    for d in ([s.fixed_density] if s.fixed_density else DENSITY_GRID):   # N:M: one trial
        adapter = start.fresh()
        gran, group = _candidate_plan(adapter, s, g)
        density = {n: (d if gran[n] is s else 1.0) for n in gran}
        result = prune(adapter, None, "magnitude", gran, density, "agp", group, epochs, None,
                       start.seed)
        ok = result.accuracy_after >= dense_acc - tolerance
        rows.append({"scheme": s.name, "density": d, "accuracy": result.accuracy_after,
                     "within": ok})
        if not ok:
            break
        best = (d, {lay.name: lay.mask.copy() for lay in adapter.prunable()})
    return best[0], best[1], rows


def _reached(pruned: dict | None, s: Scheme, lname: str) -> float:
    """The density scheme ``s`` reached on layer ``lname`` in its search (units kept
    for node pruning)."""
    if pruned is None or lname not in pruned:
        return 1.0
    mask = pruned[lname]
    if s.removes_units:
        return float(mask.reshape(mask.shape[0], -1).any(axis=1).mean())
    return float(mask.mean())


def searches_for(dev: DeviceProfile) -> list[tuple[Scheme, int]]:
    """(scheme, group width) of the searches :func:`scalpel` runs for ``dev``: the
    candidates and the device's accelerated schemes; the width is the device's SIMD
    lanes for ``simd`` and 0 for the others (only SIMD groups depend on the device)."""
    g = max(int(dev.compute.simd_lanes), 1)
    return [(s, g if s is SIMD else 0) for s in CANDIDATES + accelerated_schemes(dev)]


def search(start: Trained, s: Scheme, g: int, tolerance: float, epochs: int | None = None):
    """How far ``s`` (group width ``g`` for SIMD) prunes ``start`` within ``tolerance``:
    ``(density, {layer: mask} or None, trial rows)``, as :func:`scalpel` searches it (a
    study runs it as a task of its own and hands the result to :func:`scalpel`)."""
    epochs = SEARCH_EPOCHS if epochs is None else epochs
    dense_acc = start.fresh().evaluate()
    try:
        return _search(start, s, g, check_tolerance(tolerance), dense_acc, epochs)
    finally:
        start.restore()


def search_frame(found) -> pd.DataFrame:
    """:func:`search`'s result as rows (for a study's store): the trials, and per layer
    its mask packed into bytes with its shape."""
    density, pruned, rows = found
    out = [{"kind": "trial", **r} for r in rows]
    out.append({"kind": "reached", "density": density})
    for name, mask in (pruned or {}).items():
        out.append({"kind": "mask", "layer": name, "shape": ",".join(map(str, mask.shape)),
                    "bits": np.packbits(mask.ravel()).tobytes()})
    return pd.DataFrame(out)


def search_from_frame(df: pd.DataFrame):
    """The inverse of :func:`search_frame`."""
    trials = [{k: r[k] for k in ("scheme", "density", "accuracy", "within")}
              for r in df[df["kind"] == "trial"].to_dict("records")]
    for t in trials:
        t["within"] = bool(t["within"])
    density = float(df.loc[df["kind"] == "reached", "density"].iloc[0])
    masks = {}
    for r in df[df["kind"] == "mask"].to_dict("records"):
        shape = tuple(int(v) for v in r["shape"].split(","))
        bits = np.unpackbits(np.frombuffer(r["bits"], dtype=np.uint8))[:int(np.prod(shape))]
        masks[r["layer"]] = bits.astype(bool).reshape(shape)
    return density, (masks or None), trials


def scalpel(model: str | ModelAdapter | Trained, dev: DeviceProfile, tolerance: float = 0.01,
            seed: int = 0, progress=None, epochs: int | None = None,
            searched: dict | None = None) -> ScalpelResult:
    """Run the policy for device ``dev`` (module doc) on ``model``: a reference model
    name, or a :class:`~hwprune.prune.adapter.ModelAdapter` (a torch module's
    :class:`~hwprune.prune.torch_model.TorchAdapter`, whose ``evaluate`` gives the
    accuracies and whose ``finetune`` the ``epochs`` of AGP retraining per trial).

    A torch module is pruned in place: every trial starts from its state at the call,
    and it is left pruned with the final choice (``result.pruned``). ``model`` may also
    be a :class:`Trained` (a sweep shares its searches across devices that way).
    ``epochs``: AGP epochs per trial (default :data:`SEARCH_EPOCHS`). ``searched``:
    results of :func:`search` already run, by ``(scheme name, g)`` of
    :func:`searches_for` (a study's search tasks); the others are searched here."""
    tolerance = check_tolerance(tolerance)
    epochs = SEARCH_EPOCHS if epochs is None else epochs
    start = model if isinstance(model, Trained) else Trained(model, seed)
    name = start.name
    g = max(int(dev.compute.simd_lanes), 1)
    base = start.fresh()
    dense_acc = base.evaluate()
    net = base.network()
    layer_names = [lay.name for lay in base.prunable()]
    couplings = Couplings(tuple(tuple(g) for g in base.unit_couplings()), frozenset())
    node_ok = {n for n in layer_names if _fits_node(base, n)}
    reached, searches = {}, []
    tried = CANDIDATES + accelerated_schemes(dev)
    for s in tried:
        key = (s.name, g if s is SIMD else 0)
        if searched and key in searched:
            _, pruned, rows = searched[key]
        else:
            _, pruned, rows = _search(start, s, g, tolerance, dense_acc, epochs, progress)
        searches += rows
        reached[s] = pruned
    last = net.weighted_layers[-1].name
    candidates = {}
    for lay in net.weighted_layers:
        if lay.name not in layer_names:         # a weighted layer the adapter does not prune
            candidates[lay.name] = []
            continue
        candidates[lay.name] = [Option(s, _reached(reached[s], s, lay.name)) for s in tried
                                if fits(s, lay, g, lay.name == last)
                                and (not s.removes_units or lay.name in node_ok)
                                and (s.fixed_density is None or reached[s] is not None)]
    first = choose(net, dev, candidates, couplings)
    choice_gran, choice_group, choice_density = {}, {}, {}
    for lname in layer_names:
        lp = first.plan[lname]
        choice_gran[lname] = lp.scheme if lp.scheme.prunes else FINE
        choice_group[lname] = g if lp.scheme is SIMD else None
        choice_density[lname] = lp.density
    # The mix can lose more than each scheme alone: back off one grid step per try.
    tries = 0
    while True:
        adapter = start.fresh()
        final = prune(adapter, None, "magnitude", choice_gran, choice_density, "agp", choice_group,
                      epochs, None, seed)
        if final.accuracy_after >= dense_acc - tolerance or tries == MAX_BACKOFF:
            break
        tries += 1
        choice_density = {n: _step_up(d) for n, d in choice_density.items()}
        if progress:
            progress(f"{name}: the mix lost {dense_acc - final.accuracy_after:.4f}; backing off "
                     f"one density step (try {tries} of {MAX_BACKOFF})")
    schemes = {n: (first.plan[n].scheme if first.plan[n].scheme.prunes else DENSE)
               for n in choice_gran}
    net_final, plan = plan_of(adapter, schemes)
    plan, notes = settle(net_final, dev, plan, couplings)
    choice = Choice(plan, evaluate(net_final, dev, plan), first.dense, first.options, notes,
                    first.here, couplings)
    return ScalpelResult(name, dev.id, g, tolerance, dense_acc, final.accuracy_after, choice,
                         pd.DataFrame(searches), final.model, schemes)
