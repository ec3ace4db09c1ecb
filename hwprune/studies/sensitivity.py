"""Sensitivity analysis: test accuracy when one layer alone is pruned, per density.

As Han et al. (2015, fig. 5) and Distiller's ``sensitivity`` command do it: each layer
is pruned by itself with a criterion and granularity to each density, one-shot and
without retraining, and the test accuracy is measured; the other layers stay dense.
Layers whose accuracy holds at low density are the ones to prune hardest.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..checks import check_density
from ..errors import InputError
from ..prune import granularity as G
from ..prune.criteria import criterion as get_criterion
from ..prune.data import Dataset
from ..prune.model import Model
from ..prune.pruner import check_fits, prune_to

DEFAULT_DENSITIES = (0.9, 0.7, 0.5, 0.3, 0.2, 0.1, 0.05)


def sensitivity(model: Model, data: Dataset, criterion: str, granularity: str,
                densities: Sequence[float] = DEFAULT_DENSITIES, group: int | None = None,
                seed: int = 0) -> pd.DataFrame:
    """One row per (layer, density). Columns: ``layer``, ``target`` (density asked),
    ``density`` (kept fraction reached, of the layer's weights), ``accuracy`` (test,
    fraction), ``drop`` (dense accuracy minus accuracy, fraction)."""
    crit = get_criterion(criterion)
    s = G.check(granularity, group)
    check_fits(model, granularity, group)
    if not densities:
        raise InputError("sensitivity needs at least one density")
    densities = [check_density(d) for d in densities]
    base = model.accuracy(data.x_test, data.y_test)
    layers = model.prunable()
    rows = []
    for i, lay in enumerate(layers):
        if s.removes_units and i == len(layers) - 1:
            continue            # removing the last layer's units would remove classes
        for d in densities:
            trial = model.copy()
            trial.set_splice(False)
            targets = {x.name: 1.0 for x in layers}
            targets[lay.name] = float(d)
            prune_to(trial, crit, granularity, targets, data, np.random.default_rng(seed), group)
            acc = trial.accuracy(data.x_test, data.y_test)
            rows.append({"layer": lay.name, "target": float(d),
                         "density": float(trial.layer(lay.name).mask.mean()),
                         "accuracy": acc, "drop": base - acc})
    return pd.DataFrame(rows)
