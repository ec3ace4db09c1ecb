"""Choosing a scheme per layer from the simulators, and the table that explains it.

Both of hwprune's granularity policies (Scalpel's, :mod:`hwprune.studies.scalpel`, and
the choice at an expected density, :mod:`hwprune.studies.recommend`) end here:

1. **Candidates.** Per layer, each candidate scheme with the density it reaches there
   (measured by Scalpel's searches, or assumed). Each is evaluated alone: the layer
   pruned by it, every other layer dense (:func:`hwprune.evaluate.evaluate`).
2. **Choice**, layer by layer from the input on, with the layers before already
   decided: a candidate slower than the layer run dense there is out; of the rest, the
   one that makes this layer and the layers after it (still dense) fastest wins (ties:
   lower energy). So node pruning is credited with the inputs it removes from the next
   layers. A layer with no candidate left stays dense.

   **Coupled layers** (:mod:`hwprune.workload.coupling`: the layers a residual add or a
   depthwise convolution ties must lose the same units) take a unit-removing scheme
   together or not at all: at the group's first layer, that scheme is weighed as one
   move that prunes every member (at the members' density, weighted by their
   weights), credited with what it saves in all of them and in the layers they feed;
   the members after it keep the group's decision, and if the group declined, they
   are offered only the schemes that keep units. A group that reaches the network's
   input cannot lose units.
3. **Settling.** A plan whose densities changed after the choice (Scalpel retrains the
   mix and measures the densities reached) is settled: every pruned layer is compared
   again with the same layer run dense in that plan; a scheme that no longer beats it
   is dropped (the layer runs dense) and the plan is settled again. A coupled group's
   unit removal is compared and dropped as one: the members' summed time against the
   members run dense. So a chosen scheme
   is never slower than dense on the device it was chosen for.
4. **Table.** Every column of a row and its reason come from the settled plan's
   :class:`~hwprune.evaluate.Evaluation` and the dense one: ``speedup`` = dense layer
   latency / chosen, ``energy_ratio`` = chosen / dense energy, ``inputs_kept`` says
   when a layer before it removed units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import pandas as pd

from ..evaluate import Evaluation, LayerPlan, Plan, evaluate
from ..hardware.profile import DeviceProfile
from ..latency.network import breakeven
from ..schemes import Scheme
from ..workload.coupling import Couplings
from ..workload.network import Network

MAX_SETTLE = 16
"""Rounds of settling at most (each round drops at least one scheme)."""


@dataclass(frozen=True)
class Option:
    """A candidate scheme on one layer: the density it reaches there (1: it does not
    prune the layer), and, once evaluated alone, its speedup over dense and energy."""

    scheme: Scheme
    density: float
    speedup: float = math.nan
    energy_ratio: float = math.nan
    breakeven: float = math.nan


@dataclass(frozen=True)
class Choice:
    """A settled per-layer choice: the ``plan``, its ``evaluation`` and the ``dense``
    one of the same network and device, the ``options`` weighed per layer (speedups of
    each scheme alone), ``here``: per layer and scheme the speedup over the layer run
    dense where the choice was made (the layers before it decided), and per layer a
    ``note`` on why a scheme was dropped while settling (empty if none)."""

    plan: Plan
    evaluation: Evaluation
    dense: Evaluation
    options: Mapping[str, tuple[Option, ...]]
    notes: Mapping[str, str]
    here: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    couplings: Couplings = Couplings((), frozenset())

    def table(self) -> pd.DataFrame:
        """One row per conv/fc layer. Columns: ``layer``, ``kind``, ``scheme``,
        ``density`` (kept fraction of what the scheme removes, as the layer runs),
        ``inputs_kept`` (fraction of its inputs left by unit removal before it),
        ``speedup`` (dense latency / chosen, simulated), ``energy_ratio`` (chosen /
        dense energy, simulated), ``reason``; then per candidate scheme ``s``:
        ``s_density`` (what it reached on the layer), ``s_speedup`` and
        ``s_breakeven`` (the layer pruned by it alone; NaN: not a candidate there)."""
        rows = []
        for le in self.evaluation:
            dense = self.dense[le.layer]
            speedup = dense.cost.latency_s / le.cost.latency_s
            ratio = le.cost.energy / dense.cost.energy
            row = {"layer": le.layer, "kind": le.kind, "scheme": le.scheme.name,
                   "density": le.density, "inputs_kept": le.inputs_kept,
                   "speedup": speedup, "energy_ratio": ratio,
                   "reason": self._reason(le.layer, speedup)}
            for o in self.options.get(le.layer, ()):
                row[f"{o.scheme.name}_density"] = o.density
                row[f"{o.scheme.name}_speedup"] = o.speedup
                row[f"{o.scheme.name}_breakeven"] = o.breakeven
            rows.append(row)
        return pd.DataFrame(rows)

    def _reason(self, layer: str, speedup: float) -> str:
        le = self.evaluation[layer]
        options = self.options.get(layer, ())
        here = self.here.get(layer, {})
        others = ", ".join(f"{o.scheme.name} {here[o.scheme.name]:.2f}x at {o.density:.3f}"
                           for o in options if o.scheme.name in here and o.scheme != le.scheme)
        if le.scheme.prunes:
            chosen = next((o for o in options if o.scheme == le.scheme), None)
            be = "never" if chosen is None or math.isnan(chosen.breakeven) else f"{chosen.breakeven:.3f}"
            text = (f"{le.scheme.name} at {le.density:.3f} (break-even {be}): {speedup:.2f}x; "
                    "of the candidates it makes the network fastest")
            if others:
                text += f" (the others against dense here: {others})"
        elif self.notes.get(layer):
            text = "dense: " + self.notes[layer]
        else:
            text = "dense: " + (f"no scheme is faster than dense here ({others})" if others else
                                "no scheme prunes this layer")
        group = self.couplings.group_of(layer)
        if group and le.scheme.removes_units:
            text += ("; with the layers it must lose units with (a residual add or a depthwise "
                     "convolution couples them): " + ", ".join(m for m in group if m != layer))
        if le.inputs_kept < 1:
            text += f"; its inputs are cut to {le.inputs_kept:.3f} by units removed before it"
        return text


def _alone(net: Network, dev: DeviceProfile, layer: str, option: Option, dense: Evaluation,
           breakevens: Mapping[tuple[str, str], float]) -> Option:
    ev = evaluate(net, dev, Plan({layer: LayerPlan(option.scheme, option.density)}),
                  layers=[layer])[layer]
    d = dense[layer]
    return Option(option.scheme, option.density, d.cost.latency_s / ev.cost.latency_s,
                  ev.cost.energy / d.cost.energy,
                  breakevens.get((layer, ev.scheme.name), math.nan))


def choose(net: Network, dev: DeviceProfile, candidates: Mapping[str, Sequence[Option]],
           couplings: Couplings | None = None) -> Choice:
    """The per-layer choice among ``candidates`` (module docstring); layers not in
    ``candidates`` stay dense. ``couplings``: the layer groups that must lose the same
    units (default: none)."""
    couplings = couplings or Couplings((), frozenset())
    dense = evaluate(net, dev)
    schemes = sorted({o.scheme for opts in candidates.values() for o in opts if o.scheme.prunes},
                     key=lambda s: s.name)
    be = breakeven(net, dev, schemes) if schemes else pd.DataFrame(
        columns=["layer", "scheme", "breakeven_density"])
    breakevens = {(r.layer, r.scheme): float(r.breakeven_density) for r in be.itertuples()}
    options: dict[str, tuple[Option, ...]] = {}
    here: dict[str, dict[str, float]] = {}
    plan = Plan()
    names = [lay.name for lay in net.weighted_layers]
    weights = {lay.name: math.prod(lay.weight_shape) for lay in net.weighted_layers}
    decided: set[str] = set()                 # members whose group already decided for them
    for i, name in enumerate(names):
        opts = tuple(_alone(net, dev, name, o, dense, breakevens) if o.density < 1 else o
                     for o in candidates.get(name, ()))
        options[name] = opts
        here[name] = {}
        if name in decided:
            continue
        group = couplings.group_of(name)
        rest = names[i:]                       # this layer and the ones its choice can shrink
        here_dense = evaluate(net, dev, plan, layers=rest)
        best, best_key = None, None
        for o in opts:
            if o.density >= 1:
                continue
            members = (name,)
            if o.scheme.removes_units and name in couplings.fixed:
                continue                       # its units meet the network input's channels
            if o.scheme.removes_units and group:
                members = _group_move(group, name, o.scheme, candidates, couplings, weights)
                if not members:
                    continue
                density = _group_density(members, o.scheme, candidates, weights)
                trial = plan
                for m in members:
                    trial = trial.with_layer(m, LayerPlan(o.scheme, density))
            else:
                trial = plan.with_layer(name, LayerPlan(o.scheme, o.density))
            ev = evaluate(net, dev, trial, layers=rest)
            here[name][o.scheme.name] = here_dense[name].cost.latency_s / ev[name].cost.latency_s
            pruned = sum(ev[m].cost.latency_s for m in members)
            if pruned >= sum(here_dense[m].cost.latency_s for m in members):
                continue                       # not faster than dense where it runs
            key = (ev.total.latency_s, ev.total.energy)
            if best_key is None or key < best_key:
                best, best_key = (trial, members), key
        if best is not None:
            plan, members = best
            decided.update(m for m in members if m != name)
    plan, notes = settle(net, dev, plan, couplings)
    return Choice(plan, evaluate(net, dev, plan), dense, options, notes, here, couplings)


def _group_move(group: tuple[str, ...], name: str, s: Scheme, candidates, couplings: Couplings,
                weights) -> tuple[str, ...]:
    """The members a unit-removing scheme ``s`` prunes when ``name`` takes it: the whole
    group, weighed at its first member; () where it cannot (a later member, a group
    that reaches the network input, or a member without ``s`` among its candidates)."""
    if group[0] != name or any(m in couplings.fixed for m in group):
        return ()
    for m in group:
        if not any(o.scheme == s and o.density < 1 for o in candidates.get(m, ())):
            return ()
    return group


def _group_density(members, s: Scheme, candidates, weights) -> float:
    """The members' densities under ``s``, weighted by their weights (the pruner's
    target for a coupled group, :mod:`hwprune.prune.pruner`)."""
    got = {m: next(o.density for o in candidates[m] if o.scheme == s) for m in members}
    total = sum(weights[m] for m in members)
    return sum(got[m] * weights[m] for m in members) / total


def settle(net: Network, dev: DeviceProfile, plan: Plan,
           couplings: Couplings | None = None) -> tuple[Plan, dict[str, str]]:
    """Drop, round by round, every scheme of ``plan`` that is not faster than its layer
    run dense in the plan's context (a coupled group's unit removal: the members' summed
    time against the members dense); returns the settled plan and a note per dropped
    layer."""
    couplings = couplings or Couplings((), frozenset())
    notes: dict[str, str] = {}
    for _ in range(MAX_SETTLE):
        chosen = evaluate(net, dev, plan)
        dropped = {}
        for le in chosen:
            if not le.scheme.prunes or le.layer in dropped:
                continue
            group = couplings.group_of(le.layer)
            if group and le.scheme.removes_units:
                members = tuple(m for m in group if plan[m].scheme.removes_units)
            else:
                members = (le.layer,)
            without = plan
            for m in members:
                without = without.with_layer(m, LayerPlan())
            alone_dense = evaluate(net, dev, without, layers=list(members))
            pruned = sum(chosen[m].cost.latency_s for m in members)
            unpruned = sum(alone_dense[m].cost.latency_s for m in members)
            if pruned >= unpruned:
                what = "the layer runs dense" if len(members) == 1 else \
                    "it and its coupled layers (" + ", ".join(members) + ") run dense"
                for m in members:
                    dropped[m] = (f"{le.scheme.name} at {le.density:.3f} would take "
                                  f"{pruned / unpruned:.2f}x the dense time here, so {what}")
        if not dropped:
            return plan, notes
        notes.update(dropped)
        plan = Plan({n: lp for n, lp in plan.layers.items() if n not in dropped})
    return plan, notes
