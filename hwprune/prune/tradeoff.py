"""Accuracy against energy and latency: pruning policies swept over density and device.

Policies, each pruned from the same trained reference model and fine-tuned (AGP,
``EPOCHS`` epochs, magnitude criterion unless named otherwise):

============== ======================================== =====================================
policy         what                                     swept over
============== ======================================== =====================================
dense          the trained model                        --
magnitude      Han et al.: fine-grained, iterative      ``DENSITIES``
fine-agp       fine-grained, AGP                        ``DENSITIES``
vector         Mao et al. kernel rows (conv layers)     ``DENSITIES`` (the CNN only: on fully
kernel         Mao et al. whole kernels (conv layers)   connected layers both equal fine)
filter         Mao et al. filters                       ``DENSITIES``
node           Scalpel node pruning                     ``DENSITIES``
simd           Scalpel SIMD groups, g = device width    ``DENSITIES``, per distinct g
scalpel        Scalpel's per-layer choice               ``TOLERANCES``, per device
energy-aware   Yang et al.                              ``BUDGETS``, per device
============== ======================================== =====================================

Every point is costed on every device it applies to (device-independent policies on
all four): measured test accuracy, simulated energy (pJ) and latency (s) at batch 1,
and model bytes including index overhead (:mod:`hwprune.prune.costing`).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..hardware.profile import DeviceProfile
from . import models
from .costing import model_cost
from .energy_aware import energy_aware
from .model import Model
from .scalpel import scalpel
from .schedules import prune

DENSITIES = (0.5, 0.25, 0.12, 0.06)
TOLERANCES = (0.01, 0.02)
BUDGETS = (0.01, 0.02)
EPOCHS = 8
COLUMNS = ("model", "device", "policy", "setting", "accuracy", "energy_pj", "latency_s",
           "model_bytes", "density")


def planned_steps(name: str, devices: Sequence[DeviceProfile]) -> int:
    """How many progress messages :func:`sweep` will send (for a progress bar)."""
    cnn = any(lay.weight.ndim == 4 for lay in models.build(name).prunable())
    widths = {max(int(dev.compute.simd_lanes), 1) for dev in devices}
    independent = 4 + (2 if cnn else 0) + len(widths)
    return independent * len(DENSITIES) + len(devices) * (len(TOLERANCES) + len(BUDGETS))


def _row(name: str, dev: DeviceProfile, policy: str, setting: str, acc: float, model: Model,
         schemes) -> dict:
    cost = model_cost(model, dev, schemes)
    kept, total = model.weight_count()
    return {"model": name, "device": dev.id, "policy": policy, "setting": setting, "accuracy": acc,
            "energy_pj": float(cost["energy_pj"].sum()), "latency_s": float(cost["latency_s"].sum()),
            "model_bytes": float(cost["bytes"].sum()), "density": kept / total}


def sweep(name: str, devices: Sequence[DeviceProfile], seed: int = 0,
          progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Every policy point of reference model ``name`` on ``devices``; columns
    :data:`COLUMNS` (accuracy: test fraction; density: kept fraction of all weights)."""
    say = progress or (lambda msg: None)
    recipe = models.spec(name).recipe
    base, data = models.trained(name, seed)
    is_cnn = any(lay.weight.ndim == 4 for lay in base.prunable())
    rows = []
    dense_acc = base.accuracy(data.x_test, data.y_test)
    for dev in devices:
        rows.append(_row(name, dev, "dense", "-", dense_acc, base, "dense"))

    def independent(policy: str, granularity: str, schedule: str, group=None, devs=devices):
        for d in DENSITIES:
            say(f"{name}: {policy} at density {d}")
            model, data_ = models.trained(name, seed)
            result = prune(model, data_, "magnitude", granularity, d, schedule, group, EPOCHS, recipe, seed)
            for dev in devs:
                rows.append(_row(name, dev, policy, f"density {d}", result.accuracy_after, result.model,
                                 granularity))

    independent("magnitude", "fine", "iterative")
    independent("fine-agp", "fine", "agp")
    if is_cnn:
        independent("vector", "vector", "agp")
        independent("kernel", "kernel", "agp")
    independent("filter", "filter", "agp")
    independent("node", "node", "agp")
    by_g: dict[int, list[DeviceProfile]] = {}
    for dev in devices:
        by_g.setdefault(max(int(dev.compute.simd_lanes), 1), []).append(dev)
    for g, devs in by_g.items():
        widest = min(int(np.prod(lay.weight.shape[1:])) for lay in base.prunable())
        if g > widest:
            # A group wider than some layer's rows: those layers stay dense (fine at 1).
            plan = {lay.name: ("simd" if g <= int(np.prod(lay.weight.shape[1:])) else "fine")
                    for lay in base.prunable()}
            groups = {n: (g if gran == "simd" else None) for n, gran in plan.items()}
            for d in DENSITIES:
                say(f"{name}: simd g={g} at density {d}")
                model, data_ = models.trained(name, seed)
                dens = {n: (d if plan[n] == "simd" else 1.0) for n in plan}
                result = prune(model, data_, "magnitude", plan, dens, "agp", groups, EPOCHS, recipe, seed)
                for dev in devs:
                    rows.append(_row(name, dev, "simd", f"density {d}", result.accuracy_after,
                                     result.model, plan))
        else:
            independent("simd", "simd", "agp", g, devs)
    for dev in devices:
        for tol in TOLERANCES:
            say(f"{name}: scalpel on {dev.id}, tolerance {tol}")
            r = scalpel(name, dev, tol, seed)
            schemes = dict(zip(r.layers["layer"], r.layers["scheme"]))
            rows.append(_row(name, dev, "scalpel", f"tolerance {tol}", r.final_accuracy, r.pruned,
                             {n: ("dense" if s == "dense" else s) for n, s in schemes.items()}))
        for budget in BUDGETS:
            say(f"{name}: energy-aware on {dev.id}, budget {budget}")
            r = energy_aware(name, dev, budget, seed, EPOCHS)
            rows.append(_row(name, dev, "energy-aware", f"budget {budget}", r.final_accuracy, r.model,
                             "fine"))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def pareto(points: pd.DataFrame, cost: str) -> pd.Series:
    """Bool per row: no other row of the same (model, device) has at least the accuracy
    and at most the ``cost`` with one of them strictly better."""
    front = pd.Series(False, index=points.index)
    for _, part in points.groupby(["model", "device"]):
        acc, c = part["accuracy"].to_numpy(), part[cost].to_numpy()
        for i, idx in enumerate(part.index):
            dominated = ((acc >= acc[i]) & (c <= c[i]) & ((acc > acc[i]) | (c < c[i]))).any()
            front[idx] = not dominated
    return front


def scalpel_vs_traditional(points: pd.DataFrame, tolerance: float = 0.01) -> pd.DataFrame:
    """Per (model, device): the speedup over dense of traditional pruning (Han's
    magnitude pruning at the lowest swept density within ``tolerance`` of dense
    accuracy) and of Scalpel at that tolerance, and their ratio (Scalpel's Table 6
    compares the same two). Columns: ``model``, ``device``, ``traditional_density``,
    ``traditional_speedup``, ``scalpel_speedup``, ``scalpel_over_traditional``."""
    out = []
    for (model, device), part in points.groupby(["model", "device"], sort=False):
        dense = part[part["policy"] == "dense"].iloc[0]
        han = part[(part["policy"] == "magnitude") & (part["accuracy"] >= dense["accuracy"] - tolerance)]
        sc = part[(part["policy"] == "scalpel") & (part["setting"] == f"tolerance {tolerance}")]
        if han.empty or sc.empty:
            continue
        best = han.loc[han["density"].idxmin()]
        t_speed = dense["latency_s"] / best["latency_s"]
        s_speed = dense["latency_s"] / sc.iloc[0]["latency_s"]
        out.append({"model": model, "device": device, "traditional_density": best["density"],
                    "traditional_speedup": t_speed, "scalpel_speedup": s_speed,
                    "scalpel_over_traditional": s_speed / t_speed})
    return pd.DataFrame(out)
