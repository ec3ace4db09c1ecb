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
N:M            the patterns a device runs natively      its own density ``N / M`` (one point)
node-roundK    node pruning rounded to a device's       ``DENSITIES``
               channel multiple
scalpel        Scalpel's per-layer choice               ``TOLERANCES``, per device
energy-aware   Yang et al.                              ``BUDGETS``, per device
============== ======================================== =====================================

Every point is costed on every device it applies to (device-independent policies on
all four): measured test accuracy, simulated energy (pJ, or MAC-equivalents on a
normalized device) and latency (s) at batch 1, and model bytes including index
overhead: the pruned model as deployed (:mod:`hwprune.studies.deployed`), priced by
:func:`hwprune.evaluate.evaluate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from ..evaluate import Evaluation
from ..hardware.profile import DeviceProfile
from ..latency.network import accelerated_schemes
from ..prune import models
from ..prune.adapter import ModelAdapter, as_adapter
from ..prune.schedules import prune
from ..schemes import DENSE, FINE, SIMD, Group, Scheme, all_schemes, scheme
from .deployed import evaluate_model
from .energy_aware import energy_aware
from .engine import Runner, Task
from .scalpel import _candidate_plan, scalpel, search, search_frame, search_from_frame, searches_for
from .trained import Trained

DENSITIES = (0.5, 0.25, 0.12, 0.06)
TOLERANCES = (0.01, 0.02)
BUDGETS = (0.01, 0.02)
EPOCHS = 8
COLUMNS = ("model", "device", "energy_unit", "policy", "setting", "accuracy", "energy",
           "latency_s", "model_bytes", "density")


def _policies(is_cnn: bool, devices: Sequence[DeviceProfile] = ()) -> list[tuple[str, Scheme, str]]:
    """(policy, scheme, schedule) of the device-independent policies: Han's iterative
    magnitude pruning, then every registered scheme with AGP (kernel-row and kernel
    schemes on CNNs only; SIMD groups per device width, in :func:`sweep`), then the N:M
    patterns and rounded node pruning that one of ``devices`` has hardware for
    (:func:`~hwprune.latency.network.accelerated_schemes`; other parametric schemes
    only when asked for by name elsewhere)."""
    out = [("magnitude", FINE, "iterative"), ("fine-agp", FINE, "agp")]
    extra = [s for dev in devices for s in accelerated_schemes(dev)]
    for s in dict.fromkeys([s for s in all_schemes() if not s.parametric] + extra):
        if s.prunes and s is not FINE and s.group is not Group.SIMD and (is_cnn or not s.conv_only):
            out.append((s.name, s, "agp"))
    return out


def _widths(devices: Sequence[DeviceProfile]) -> dict[int, list[DeviceProfile]]:
    by_g: dict[int, list[DeviceProfile]] = {}
    for dev in devices:
        by_g.setdefault(SIMD.group_width((1, 1), dev.compute.simd_lanes), []).append(dev)
    return by_g


def _is_cnn(model) -> bool:
    if isinstance(model, str):
        return any(lay.weight.ndim == 4 for lay in models.build(model).prunable())
    if isinstance(model, ModelAdapter):
        return any(lay.weight.ndim == 4 for lay in model.prunable())
    from ..prune.torch_model import torch_or_error

    torch = torch_or_error()
    return any(isinstance(m, torch.nn.Conv2d) for m in model.modules())


def energy_aware_applies(model, seed: int = 0) -> bool:
    """Whether :func:`sweep` prices energy-aware points for ``model``: a reference model,
    or an adapter that gives training inputs for the re-fit (a torch module with a train
    loader)."""
    if isinstance(model, str):
        return True
    try:
        as_adapter(model).sample_inputs(1, seed)
    except InputError:
        return False
    return True


def planned_steps(model, devices: Sequence[DeviceProfile], energy_aware_points: bool | None = None,
                  tolerances: Sequence[float] | None = None) -> int:
    """How many progress messages :func:`sweep` sends: one per task of
    :func:`sweep_tasks`. ``model``: a reference model name, an adapter or a torch module
    (``energy_aware_points``: whether the sweep has them; a bare torch module must say)."""
    if not isinstance(model, (str, ModelAdapter)):
        if energy_aware_points is None:
            raise InputError("planned_steps of a torch module: say whether it has a train loader "
                             "(energy_aware_points=True/False)")
        cnn = _is_cnn(model)
        searches = {(s.name, g) for dev in devices for s, g in searches_for(dev)}
        policies = _policies(cnn, devices)
        return (1 + sum(1 if s.fixed_density else len(DENSITIES) for _, s, _ in policies)
                + len(_widths(devices)) * len(DENSITIES)
                + len(TOLERANCES if tolerances is None else tolerances) * (len(searches)
                                                                            + len(devices))
                + (len(devices) * len(BUDGETS) if energy_aware_points else 0))
    return len(sweep_tasks(model, devices, tolerances=tolerances))


def _row(name: str, dev: DeviceProfile, policy: str, setting: str, acc: float, model,
         schemes, evaluation: Evaluation | None = None) -> dict:
    """One point: ``model`` (a reference Model or an adapter) pruned by ``schemes`` as
    deployed (or as ``evaluation`` prices it, when the policy settled how each layer runs)."""
    total = (evaluation or evaluate_model(model, dev, schemes)).total
    kept, weights = as_adapter(model).weight_count()
    return {"model": name, "device": dev.id, "energy_unit": dev.energy_unit, "policy": policy,
            "setting": setting, "accuracy": acc, "energy": total.energy,
            "latency_s": total.latency_s, "model_bytes": total.bytes, "density": kept / weights}


def _plan(adapter: ModelAdapter, s: Scheme):
    """(granularity, densities from d) of a uniform policy: ``s`` itself, or, where the
    adapter refuses to remove some layers' units (a torch layer feeding a
    concatenation), a per-layer plan with those layers dense (fine at density 1)."""
    gran, _ = _candidate_plan(adapter, s, 1)
    if all(g is s for g in gran.values()):
        return s, (lambda d: d)
    return gran, (lambda d: {n: (d if g is s else 1.0) for n, g in gran.items()})


def sweep_tasks(model: str | ModelAdapter | Trained, devices: Sequence[DeviceProfile],
                seed: int = 0, epochs: int | None = None,
                tolerances: Sequence[float] | None = None) -> list[Task]:
    """The points of :func:`sweep` as engine tasks (:mod:`hwprune.studies.engine`), in
    the table's row order. A task owns one pruned model and costs it on every device it
    applies to (the device loop stays inside the task): the dense model; each
    device-independent policy at each density; SIMD groups per distinct width and
    density; Scalpel per tolerance (its searches shared by the devices); energy-aware per
    device and budget. ``model``: a reference model name (trained here once; its tasks
    carry the trained weights to any worker), or an adapter or
    :class:`~hwprune.studies.trained.Trained` (its tasks hold the module).
    ``tolerances``: Scalpel's (default :data:`TOLERANCES`)."""
    start = model if isinstance(model, Trained) else Trained(model, seed)
    ref = start          # a reference model's trained weights travel with it to a worker
    devices = tuple(devices)
    base = start.fresh()
    is_cnn = any(lay.weight.ndim == 4 for lay in base.prunable())
    with_energy_aware = start.reference or energy_aware_applies(base, seed)
    start.restore()
    name = start.name
    point_epochs = EPOCHS if epochs is None else epochs
    tasks = [Task(f"{name}/dense", _dense_point, (ref, devices, seed))]
    for policy, s, schedule in _policies(is_cnn, devices):
        for d in ([s.fixed_density] if s.fixed_density else DENSITIES):   # N:M: one point
            tasks.append(Task(f"{name}/{policy}/density {d}", _policy_point,
                              (ref, devices, seed, policy, s.name, schedule, d, point_epochs)))
    for g, devs in _widths(devices).items():
        for d in DENSITIES:
            tasks.append(Task(f"{name}/simd g={g}/density {d}", _simd_point,
                              (ref, tuple(devs), seed, g, d, point_epochs)))
    tasks += scalpel_tasks(ref, name, devices, seed,
                           TOLERANCES if tolerances is None else tolerances, epochs)
    if with_energy_aware:
        for dev in devices:
            for budget in BUDGETS:
                tasks.append(Task(f"{name}/energy-aware/{dev.id}/budget {budget}",
                                  _energy_aware_point, (ref, dev, seed, budget, point_epochs)))
    return tasks


def scalpel_tasks(ref: str | Trained, name: str, devices: Sequence[DeviceProfile], seed: int,
                  tolerances: Sequence[float], epochs: int | None = None) -> list[Task]:
    """Scalpel on every device at every tolerance as engine tasks: one task per distinct
    search (scheme and group width; shared by the devices that need it), then one per
    device that chooses from the searches it needs (tables ``points``, the sweep's row,
    and ``granularity``, the device's per-layer table). ``ref``: a reference model's
    name or :class:`Trained`; ``name``: the model's name in the keys; ``epochs``: AGP
    epochs per trial (default :data:`~hwprune.studies.scalpel.SEARCH_EPOCHS`)."""
    tasks = []
    for tol in tolerances:
        keys = {}
        for dev in devices:
            for s, g in searches_for(dev):
                key = f"{name}/search {s.name} g={g}/tolerance {tol}"
                if key not in keys.values():
                    tasks.append(Task(key, _search_point, (ref, seed, s.name, g, tol, epochs),
                                      tables=("searches",)))
                keys[(dev.id, s.name, g)] = key
        for dev in devices:
            wanted = tuple((s.name, g, keys[(dev.id, s.name, g)]) for s, g in searches_for(dev))
            tasks.append(Task(f"{name}/scalpel/{dev.id}/tolerance {tol}", _scalpel_point,
                              (ref, dev, seed, tol, epochs, wanted),
                              tables=("points", "granularity"),
                              needs=tuple(key for _, _, key in wanted)))
    return tasks


def _started(ref, seed: int) -> Trained:
    """The task's trained start: the :class:`Trained` it was given, or a reference
    model's by name."""
    return ref if isinstance(ref, Trained) else Trained(ref, seed)


def _dense_point(ref, devices, seed) -> pd.DataFrame:
    start = _started(ref, seed)
    try:
        base = start.fresh()
        acc = base.evaluate()
        return pd.DataFrame([_row(start.name, dev, "dense", "-", acc, base, DENSE) for dev in devices],
                            columns=list(COLUMNS))
    finally:
        start.restore()


def _pruned_rows(start: Trained, devices, policy: str, setting: str, plan, densities, group,
                 schedule: str, epochs: int, seed: int) -> pd.DataFrame:
    adapter = start.fresh()
    result = prune(adapter, None, "magnitude", plan, densities, schedule, group, epochs, None, seed)
    return pd.DataFrame([_row(start.name, dev, policy, setting, result.accuracy_after, adapter, plan)
                         for dev in devices], columns=list(COLUMNS))


def _policy_point(ref, devices, seed, policy, scheme_name, schedule, density, epochs) -> pd.DataFrame:
    start = _started(ref, seed)
    try:
        plan, densities = _plan(start.fresh(), scheme(scheme_name))
        return _pruned_rows(start, devices, policy, f"density {density}", plan, densities(density),
                            None, schedule, epochs, seed)
    finally:
        start.restore()


def _simd_point(ref, devices, seed, g, density, epochs) -> pd.DataFrame:
    start = _started(ref, seed)
    try:
        # A layer whose rows are shorter than g stays dense (fine at density 1).
        plan = {lay.name: (SIMD if g <= int(np.prod(lay.weight.shape[1:])) else FINE)
                for lay in start.fresh().prunable()}
        groups = {n: (g if s is SIMD else None) for n, s in plan.items()}
        densities = {n: (density if s is SIMD else 1.0) for n, s in plan.items()}
        return _pruned_rows(start, devices, "simd", f"density {density}", plan, densities, groups,
                            "agp", epochs, seed)
    finally:
        start.restore()


def _search_point(ref, seed, scheme_name, g, tol, epochs) -> pd.DataFrame:
    """One of Scalpel's searches (how far a scheme prunes within ``tol``), shared by
    every device that needs it."""
    start = _started(ref, seed)
    return search_frame(search(start, scheme(scheme_name), g, tol, epochs))


def _scalpel_point(ref, dev, seed, tol, epochs, wanted, searched) -> dict[str, pd.DataFrame]:
    """Scalpel at ``tol`` on ``dev`` from the search tasks' results (``wanted``:
    (scheme, g, task key) of each; ``searched``: their rows by key): the sweep's row and
    the device's granularity table (the report's, with the model, device, group and
    accuracies)."""
    start = _started(ref, seed)
    found = {(name, g): search_from_frame(searched[key]["searches"]) for name, g, key in wanted}
    try:
        r = scalpel(start, dev, tol, seed, epochs=epochs, searched=found)
        pruned = r.pruned if start.reference else start.adapter
        row = _row(start.name, dev, "scalpel", f"tolerance {tol}", r.final_accuracy, pruned,
                   r.schemes, r.choice.evaluation)
        table = r.layers.copy()
        for column, value in (("model", r.model), ("device", r.device), ("group", r.group),
                              ("tolerance", tol), ("dense_accuracy", r.dense_accuracy),
                              ("final_accuracy", r.final_accuracy)):
            table.insert(len(table.columns), column, value)
    finally:
        start.restore()
    return {"points": pd.DataFrame([row], columns=list(COLUMNS)), "granularity": table}


def _energy_aware_point(ref, dev, seed, budget, epochs) -> pd.DataFrame:
    start = _started(ref, seed)
    try:
        if start.reference:
            r = energy_aware(start.name, dev, budget, seed, epochs)
            pruned = r.model
        else:
            r = energy_aware(start.fresh(), dev, budget, seed, epochs)
            pruned = start.adapter
        return pd.DataFrame([_row(start.name, dev, "energy-aware", f"budget {budget}",
                                  r.final_accuracy, pruned, FINE)], columns=list(COLUMNS))
    finally:
        start.restore()


def sweep(model: str | ModelAdapter, devices: Sequence[DeviceProfile], seed: int = 0,
          progress: Callable[[str], None] | None = None, epochs: int | None = None,
          runner: Runner | None = None) -> pd.DataFrame:
    """Every policy point of ``model`` on ``devices``; columns :data:`COLUMNS`
    (accuracy: test fraction, or the adapter's score; energy in ``energy_unit``;
    density: kept fraction of all weights).

    ``model``: a reference model name, or a :class:`~hwprune.prune.adapter.ModelAdapter`
    (a torch module's; each point starts from its state at the call, fine-tunes
    ``epochs`` with the adapter's ``finetune``, is scored by its ``evaluate``, and the
    module is left as it came in). Energy-aware points need training inputs for the
    re-fit (:func:`energy_aware_applies`: a torch module's train loader); without them
    the sweep has none. ``epochs``: fine-tuning per point (default :data:`EPOCHS`; Scalpel's trials then
    keep their own default, :data:`~hwprune.studies.scalpel.SEARCH_EPOCHS`). ``runner``:
    where the points run and which store keeps them (default: in this process, no
    store); :func:`sweep_tasks` lists them."""
    return study([model], devices, seed, progress, epochs, runner).points[list(COLUMNS)]


@dataclass(frozen=True)
class TradeoffStudy:
    """A sweep with its Pareto fronts: ``points`` (columns :data:`COLUMNS` plus
    ``pareto_energy`` and ``pareto_latency``, bool: on the front of its model and
    device), ``versus`` (:func:`scalpel_vs_traditional`), ``granularity`` (Scalpel's
    per-layer table per model, device and tolerance: :meth:`Choice.table`'s columns and
    ``model``, ``device``, ``group``, ``tolerance``, ``dense_accuracy``,
    ``final_accuracy``), ``failures`` (point key -> error of the points that failed) and
    ``summary`` (one line: points run, taken from the store, failed)."""

    points: pd.DataFrame
    versus: pd.DataFrame
    granularity: pd.DataFrame = field(default_factory=pd.DataFrame)
    failures: dict = field(default_factory=dict)
    summary: str = ""


def study(names: Sequence[str | ModelAdapter], devices: Sequence[DeviceProfile], seed: int = 0,
          progress: Callable[[str], None] | None = None, epochs: int | None = None,
          runner: Runner | None = None) -> TradeoffStudy:
    """:func:`sweep` every model in ``names`` (reference model names or adapters) on
    ``devices`` through the engine (``runner``: where, and the store) and mark the
    fronts."""
    runner = runner or Runner()
    tasks = [t for n in names for t in sweep_tasks(n, devices, seed, epochs)]
    outcome = runner.run(tasks, progress)
    points = outcome.table("points")
    if points.empty:
        raise InputError("no point of the study finished: " + outcome.summary())
    points = points.reset_index(drop=True)
    points["pareto_energy"] = pareto(points, "energy")
    points["pareto_latency"] = pareto(points, "latency_s")
    return TradeoffStudy(points, scalpel_vs_traditional(points), outcome.table("granularity"),
                         outcome.failures, outcome.summary())


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
    ``traditional_speedup``, ``scalpel_speedup``, ``scalpel_over_traditional``, ``note``.
    A model with no magnitude point within the tolerance gets NaN for traditional
    pruning and a note saying so (rather than no row)."""
    out = []
    for (model, device), part in points.groupby(["model", "device"], sort=False):
        dense = part[part["policy"] == "dense"].iloc[0]
        han = part[(part["policy"] == "magnitude") & (part["accuracy"] >= dense["accuracy"] - tolerance)]
        sc = part[(part["policy"] == "scalpel") & (part["setting"] == f"tolerance {tolerance}")]
        if sc.empty:
            continue
        s_speed = dense["latency_s"] / sc.iloc[0]["latency_s"]
        if han.empty:
            out.append({"model": model, "device": device, "traditional_density": float("nan"),
                        "traditional_speedup": float("nan"), "scalpel_speedup": s_speed,
                        "scalpel_over_traditional": float("nan"),
                        "note": f"no magnitude point within {tolerance} of dense accuracy"})
            continue
        best = han.loc[han["density"].idxmin()]
        t_speed = dense["latency_s"] / best["latency_s"]
        out.append({"model": model, "device": device, "traditional_density": best["density"],
                    "traditional_speedup": t_speed, "scalpel_speedup": s_speed,
                    "scalpel_over_traditional": s_speed / t_speed, "note": ""})
    return pd.DataFrame(out, columns=["model", "device", "traditional_density",
                                      "traditional_speedup", "scalpel_speedup",
                                      "scalpel_over_traditional", "note"])
