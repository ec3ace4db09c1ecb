"""Sensitivity analysis: test accuracy when one layer alone is pruned, per density.

As Han et al. (2015, fig. 5) and Distiller's ``sensitivity`` command do it: each layer
is pruned by itself with a criterion and granularity to each density, one-shot and
without retraining, and the test accuracy is measured; the other layers stay dense.
Layers whose accuracy holds at low density are the ones to prune hardest.

Runs on a :class:`~hwprune.prune.adapter.ModelAdapter` (a numpy reference model with its
data, or a torch module with its evaluation): each trial saves the weights and masks
(``state``), prunes, evaluates and restores them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..checks import check_density
from ..errors import InputError
from ..prune import granularity as G
from ..prune.adapter import ModelAdapter, as_adapter
from ..prune.criteria import criterion as get_criterion
from ..prune.data import Dataset
from ..prune.model import Model
from ..prune.pruner import check_fits, prune_to
from .engine import Runner, Task
from .trained import Trained

DEFAULT_DENSITIES = (0.9, 0.7, 0.5, 0.3, 0.2, 0.1, 0.05)


def sensitivity(model: Model | ModelAdapter, data: Dataset | None, criterion: str, granularity: str,
                densities: Sequence[float] = DEFAULT_DENSITIES, group: int | None = None,
                seed: int = 0, beside: Sequence[str] = (), runner: Runner | None = None) -> pd.DataFrame:
    """One row per (layer, density). Columns: ``layer``, ``scheme``, ``target``
    (density asked), ``density`` (kept fraction reached, of the layer's weights),
    ``accuracy`` (test, fraction, or the adapter's score), ``drop`` (dense accuracy
    minus accuracy). An N:M granularity has one row per layer, at ``N / M``.

    ``beside``: N:M patterns (``2:4``, ...) measured the same way, one row per layer
    each, beside ``granularity``'s rows (N:M next to fine-grained pruning).
    ``model``: a reference :class:`~hwprune.prune.model.Model` with its ``data``, or a
    :class:`~hwprune.prune.adapter.ModelAdapter` (``data`` None). The model is left as
    it came in. Each (layer, scheme) is a task of the sweep engine (``runner``: in this
    process by default, or on Dask workers for a reference model)."""
    crit = get_criterion(criterion)
    s = G.check(granularity, group)
    adapter = as_adapter(model, data)
    check_fits(adapter, granularity, group)
    adapter.require(crit, 0)
    if not densities:
        raise InputError("sensitivity needs at least one density")
    densities = [check_density(d) for d in densities]
    extra = [G.check(b, None) for b in beside]
    for b in extra:
        if b.fixed_density is None:
            raise InputError(f"sensitivity shows N:M patterns beside the granularity; {b.name!r} "
                             "is not one (run sensitivity with --granularity for it)")
        check_fits(adapter, b, None)
    base = adapter.evaluate()
    names = [lay.name for lay in adapter.prunable()]
    runs = [(s, group, [s.fixed_density] if s.fixed_density else densities)]
    runs += [(b, None, [b.fixed_density]) for b in extra]
    # A reference model travels to a worker as a copy with its data; an adapter (a
    # torch module) as a Trained: in this process the module itself, pruned in place and
    # put back; on a worker, built again from its specs (trained.Trained).
    ref = (model.copy(), data) if isinstance(model, Model) else Trained(adapter)
    tasks = [Task(f"sensitivity/{name}/{scheme.name}", _layer_rows,
                  (ref, criterion, scheme.name, width, name, tuple(points), seed, base))
             for i, name in enumerate(names) for scheme, width, points in runs
             if not (scheme.removes_units and i == len(names) - 1)]   # the classes stay
    outcome = (runner or Runner()).run(tasks)
    if outcome.failures:
        key = next(iter(outcome.failures))
        raise InputError(f"sensitivity's point {key} failed: {outcome.failures[key]}")
    table = outcome.table()
    return table if len(table) else pd.DataFrame(
        columns=["layer", "scheme", "target", "density", "accuracy", "drop"])


def _layer_rows(ref, criterion: str, scheme_name: str, width, name: str, points, seed: int,
                base: float) -> pd.DataFrame:
    """One layer pruned alone to each density of ``points`` by one scheme (a task)."""
    adapter = as_adapter(ref[0].copy(), ref[1]) if isinstance(ref, tuple) else ref.fresh()
    crit = get_criterion(criterion)
    saved = adapter.state()
    names = [lay.name for lay in adapter.prunable()]
    rows = []
    try:
        adapter.set_splice(False)
        for d in points:
            targets = {x: 1.0 for x in names}
            targets[name] = float(d)
            prune_to(adapter, crit, G.scheme(scheme_name), targets, None,
                     np.random.default_rng(seed), width)
            acc = adapter.evaluate()
            rows.append({"layer": name, "scheme": scheme_name, "target": float(d),
                         "density": float(adapter.layer(name).mask.mean()),
                         "accuracy": acc, "drop": base - acc})
            adapter.load_state(saved)
    finally:
        adapter.load_state(saved)
    return pd.DataFrame(rows)
