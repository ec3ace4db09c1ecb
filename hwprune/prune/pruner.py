"""Turn a criterion and a granularity into masks at target densities, layer by layer.

:func:`prune_to` is the single step every schedule repeats: score each layer's groups,
keep the best to hit the layer's target density (within one group), and write the
masks into the model. Already-pruned groups stay pruned (they cannot be chosen again),
except under a splicing criterion (dynamic network surgery), where a group scoring
above the upper threshold comes back.

Node pruning also removes, from the layers that read a removed unit (the next prunable
layer of a reference model; every conv or linear layer a torch model's unit reaches),
the weights that read it (a removed neuron's column, a removed filter's input channel
or, after a flatten, its positions): that layer's density falls below its own target by
that much.

Layers whose units must go together (:meth:`~.adapter.ModelAdapter.unit_couplings`: a
torch model's residual-add inputs, a depthwise convolution and its producer) and that a
unit-removing scheme prunes (filter or node) lose one unit set, chosen from their
combined scores: otherwise the add would still carry every unit some branch kept, and
the model could not be made smaller.

Every function takes a :class:`~.adapter.ModelAdapter` or a numpy reference
:class:`~.model.Model` (wrapped with :func:`~.adapter.as_adapter`): one code path for
both model kinds.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..checks import check_density
from ..errors import InputError
from ..schemes import Scheme
from . import granularity as G
from .adapter import ModelAdapter, as_adapter
from .criteria import Criterion
from .data import Dataset
from .model import Model

Granularity = str | Scheme | Mapping[str, str | Scheme]
"""One granularity for every layer, or one per layer name (mixed, as Scalpel chooses)."""
Group = int | None | Mapping[str, int | None]


def per_layer(model: Model | ModelAdapter, granularity: Granularity,
              group: Group) -> dict[str, tuple[Scheme, int | None]]:
    """``{layer: (scheme, group width)}``, each checked (:func:`granularity.check`); a
    mapping must name every prunable layer."""
    names = [lay.name for lay in model.prunable()]
    out = {}
    for n in names:
        if isinstance(granularity, Mapping):
            if n not in granularity:
                raise InputError(f"a per-layer granularity must name every layer; {n!r} is missing")
            gran = granularity[n]
        else:
            gran = granularity
        g = group.get(n) if isinstance(group, Mapping) else group
        out[n] = (G.check(gran, g), g)
    if isinstance(granularity, Mapping):
        unknown = sorted(set(granularity) - set(names))
        if unknown:
            raise InputError(f"model {model.name!r} has no prunable layer(s) {', '.join(unknown)}")
    return out


def targets_for(model: Model | ModelAdapter, density: float | Mapping[str, float],
                granularity: Granularity) -> dict[str, float]:
    """Per-layer target densities: one number for every layer, or a mapping by layer
    name (layers not named stay dense). Filter and node granularities keep the last
    layer (the classes) dense."""
    names = [lay.name for lay in model.prunable()]
    if isinstance(density, Mapping):
        unknown = sorted(set(density) - set(names))
        if unknown:
            raise InputError(f"model {model.name!r} has no prunable layer(s) {', '.join(unknown)}; "
                             f"its layers: {', '.join(names)}")
        out = {n: float(density.get(n, 1.0)) for n in names}
    else:
        out = {n: float(density) for n in names}
    for n, d in out.items():
        out[n] = check_density(d, f"density of {n}")
        layer_scheme = G.scheme(granularity.get(n) if isinstance(granularity, Mapping)
                                else granularity)
        if not layer_scheme.prunes:
            out[n] = 1.0
        elif layer_scheme.fixed_density is not None and out[n] < 1.0:
            out[n] = layer_scheme.fixed_density      # N:M: the pattern fixes the density
    last = granularity.get(names[-1]) if isinstance(granularity, Mapping) else granularity
    if G.scheme(last).removes_units:
        out[names[-1]] = 1.0
    return out


def check_fits(model: Model | ModelAdapter, granularity: Granularity, group: Group) -> None:
    """Raise :class:`InputError` now if the granularity does not fit some layer (or, for
    node pruning, some layer's units cannot be removed with the layers reading them)."""
    model = as_adapter(model)
    plan = per_layer(model, granularity, group)
    layers = model.prunable()
    for i, lay in enumerate(layers):
        gran, g = plan[lay.name]
        G.groups_of(lay.weight.shape, gran, g, lay.name)
        if gran.masks_consumers and i < len(layers) - 1:
            model.check_consumers(lay.name)
    for members in model.unit_couplings():
        schemes = {m: plan[m][0].name for m in members if m in plan}
        if any(plan[m][0].removes_units for m in schemes) and len(set(schemes.values())) > 1:
            raise InputError("removing units: the layers " + ", ".join(members) + " must lose the "
                             "same units (a residual add or a depthwise convolution couples them), "
                             "so they take one granularity; got " + ", ".join(f"{m}: {g}" for m, g in
                                                                               schemes.items()))


def prune_to(model: Model | ModelAdapter, criterion: Criterion, granularity: Granularity,
             targets: Mapping[str, float], data: Dataset | None, rng: np.random.Generator,
             group: Group = None, band: float = 0.0) -> None:
    """Set every prunable layer's mask to its target density (see module docstring).

    ``data``: a reference model's data set (None with an adapter, which carries its own).
    ``band`` > 0 applies network surgery's two thresholds around the target's score
    threshold instead of an exact cut (the result is then only near the target)."""
    if isinstance(model, Model):
        if criterion.needs_data and data is None:
            raise InputError(f"criterion {criterion.name!r} needs training data")
        model = as_adapter(model, data)
    else:
        model = as_adapter(model, data)
        model.require(criterion, 0)
    stats = model.statistics(int(rng.integers(1 << 31))) if criterion.needs_data else {}
    layers = model.prunable()
    plan = per_layer(model, granularity, group)
    new_masks, units, seen = {}, {}, {}
    for lay in layers:
        gran, width = plan[lay.name]
        groups = G.groups_of(lay.weight.shape, gran, width, lay.name)
        current = G.alive(groups, lay.mask)
        target = targets[lay.name]
        scores = None
        if target >= 1.0 and not criterion.splice:
            keep = current
        else:
            scores = criterion.group_scores(lay, groups, stats.get(lay.name), rng, gran)
            keep = _keep(gran, groups, scores, target, current, criterion.splice, band)
        seen[lay.name] = (lay, groups, current, target, scores)
        new_masks[lay.name] = G.to_mask(groups, keep)
        if gran.masks_consumers:
            units[lay.name] = keep
    for members in _unit_couplings(model, plan):
        keep = _coupled_keep([seen[m] for m in members], criterion, stats, rng, band, plan)
        for m in members:
            new_masks[m] = G.to_mask(seen[m][1], keep)
            if plan[m][0].masks_consumers:
                units[m] = keep
    for producer, keep in units.items():
        for consumer, reads in model.consumer_masks(producer, keep).items():
            new_masks[consumer] = new_masks[consumer] & reads
    model.set_masks(new_masks)


def _keep(gran, groups, scores, target, current, splice: bool, band: float) -> np.ndarray:
    """The groups kept at ``target`` (an exact cut, or surgery's two thresholds; an N:M
    layer's windows take their exact cut whatever the band)."""
    keep = G.keep_groups(gran, groups, scores, target, None if splice else current)
    if band > 0 and gran.fixed_density is None:
        cut = scores[keep].min()
        keep = (scores >= cut * (1 + band)) | (current & (scores >= cut * (1 - band)))
    return keep


def _unit_couplings(model: ModelAdapter, plan) -> list[tuple[str, ...]]:
    """The groups of two or more layers pruned by a unit-removing scheme (filter, node)
    that must keep the same units."""
    out = []
    for members in model.unit_couplings():
        node = [m for m in members if m in plan and plan[m][0].removes_units]
        if len(node) > 1:
            out.append(tuple(node))
    return out


def _coupled_keep(entries, criterion: Criterion, stats, rng, band: float, plan) -> np.ndarray:
    """One unit set for coupled layers: each member's unit scores over their mean, then
    averaged over the members; the target is the members' weighted mean target."""
    if all(t >= 1.0 for _, _, _, t, _ in entries) and not criterion.splice:
        return np.logical_and.reduce([c for _, _, c, _, _ in entries])
    combined, sizes, current, weights, target = 0.0, 0, True, 0, 0.0
    for lay, groups, cur, t, scores in entries:
        if scores is None:
            scores = criterion.group_scores(lay, groups, stats.get(lay.name), rng, plan[lay.name][0])
        scale = float(np.mean(np.abs(scores))) or 1.0
        combined = combined + scores / scale
        sizes = sizes + groups.sizes
        current = current & cur
        weights += int(groups.sizes.sum())
        target += t * int(groups.sizes.sum())
    first = entries[0]
    coupled = G.Groups(first[1].ids, first[1].count, sizes, first[1].row_of)
    return _keep(plan[first[0].name][0], coupled, combined / len(entries), target / weights,
                 current, criterion.splice, band)
