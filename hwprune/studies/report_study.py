"""Everything ``hwprune report`` shows, computed: the study behind the page.

For each model (the reference models, or the user's own through its
:class:`~hwprune.prune.adapter.ModelAdapter`): the trained model's accuracy, energy
per layer on each device (dense, batch 1), latency-density curves per scheme,
Scalpel's choice per device (tolerance :data:`TOLERANCE`), and the trade-off sweep
over all models. A user's model is scored by its adapter's ``evaluate``, pruned in
place for each search and put back as it came in.
:mod:`hwprune.report.html_report` renders it; it computes nothing itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import pandas as pd

from ..cost.energy import network_energy
from ..errors import InputError
from ..hardware.profile import DeviceProfile
from ..latency.network import default_schemes, latency_curves
from ..prune import models
from ..prune.adapter import ModelAdapter
from . import tradeoff
from .engine import Runner, Task
from .tradeoff import TradeoffStudy, pareto, scalpel_vs_traditional, sweep_tasks
from .trained import Trained

TOLERANCE = 0.01


@dataclass(frozen=True)
class GranularityChoice:
    """Scalpel's choice for one model and device as the report shows it: ``group`` (the
    SIMD width), ``dense_accuracy`` and ``final_accuracy`` (fractions), ``layers`` (the
    per-layer table, :meth:`~hwprune.studies.choice.Choice.table`'s columns)."""

    group: int
    dense_accuracy: float
    final_accuracy: float
    layers: pd.DataFrame


@dataclass(frozen=True)
class ModelStudy:
    """One reference model: ``name``, ``description``, ``data`` (the data set's
    description), ``accuracy`` (dense, test fraction), per device id ``energy`` (the
    energy table, :func:`hwprune.api.energy`'s columns), ``curves`` (latency against
    density, :func:`hwprune.latency.network.latency_curves`'s columns) and
    ``scalpel`` (:class:`GranularityChoice`, tolerance :data:`TOLERANCE`)."""

    name: str
    description: str
    data: str
    accuracy: float
    energy: dict[str, pd.DataFrame]
    curves: dict[str, pd.DataFrame]
    scalpel: dict[str, GranularityChoice]


@dataclass(frozen=True)
class ReportStudy:
    """The report's results: ``models`` (one :class:`ModelStudy` each), ``devices``,
    ``tradeoff`` (the sweep over all models), ``seed``."""

    models: tuple[ModelStudy, ...]
    devices: tuple[DeviceProfile, ...]
    tradeoff: TradeoffStudy
    seed: int


def report_tasks(names: Sequence[str | ModelAdapter | Trained], devices: Sequence[DeviceProfile],
                 seed: int = 0, epochs: int | None = None) -> list[Task]:
    """The report's points as engine tasks: per model and device its energy table and
    its latency curves, then the trade-off sweep's tasks (whose Scalpel tasks at
    :data:`TOLERANCE` give the report's granularity tables)."""
    tasks = []
    for model in names:
        start = model if isinstance(model, Trained) else Trained(model, seed)
        for dev in devices:
            tasks.append(Task(f"{start.name}/energy/{dev.id}", _energy_point, (start, dev, seed),
                              tables=("energy",)))
            tasks.append(Task(f"{start.name}/curves/{dev.id}", _curves_point, (start, dev, seed),
                              tables=("curves",)))
        tasks += sweep_tasks(start, devices, seed, epochs,
                             sorted({*tradeoff.TOLERANCES, TOLERANCE}))
    return tasks


def report_steps(names: Sequence[str | ModelAdapter], devices: Sequence[DeviceProfile]) -> int:
    """Progress messages :func:`report_study` sends: one per task."""
    return len(report_tasks(names, devices))


def _energy_point(start: Trained, dev: DeviceProfile, seed: int) -> pd.DataFrame:
    try:
        return network_energy(start.fresh().network(), dev)
    finally:
        start.restore()


def _curves_point(start: Trained, dev: DeviceProfile, seed: int) -> pd.DataFrame:
    try:
        return latency_curves(start.fresh().network(), dev, default_schemes(dev))
    finally:
        start.restore()


def _start(model: str | ModelAdapter, seed: int) -> tuple[Trained, str, str, float]:
    """(the trained start, description, data description, dense accuracy)."""
    if isinstance(model, str):
        trained, data = models.trained(model, seed)
        return (Trained(model, seed), models.spec(model).description, data.description,
                trained.accuracy(data.x_test, data.y_test))
    start = Trained(model, seed)
    return (start, f"your {model.kind} model {model.name}",
            "Your data: accuracy is your evaluation's score (top-1 on your test loader by default)",
            model.evaluate())


def report_study(devices: Sequence[DeviceProfile],
                 names: Sequence[str | ModelAdapter] = tuple(models.MODELS), seed: int = 0,
                 progress: Callable[[str], None] | None = None,
                 epochs: int | None = None, runner: Runner | None = None) -> ReportStudy:
    """Train (reference models), cost, choose and sweep (module docstring) through the
    engine (``runner``: where the tasks run, and the store that keeps them). ``names``:
    reference model names or adapters; ``epochs``: fine-tuning per search trial and per
    trade-off point (default: each policy's own)."""
    runner = runner or Runner()
    devices = tuple(devices)
    starts = [_start(model, seed) for model in names]
    outcome = runner.run(report_tasks([s for s, *_ in starts], devices, seed, epochs), progress)
    failed = [k for k in outcome.failures if "/energy/" in k or "/curves/" in k]
    if failed:
        raise InputError(f"the report's {failed[0]} failed: {outcome.failures[failed[0]]}")
    out = []
    for start, description, data, accuracy in starts:
        name = start.name
        energy = {d.id: outcome.results[f"{name}/energy/{d.id}"]["energy"] for d in devices}
        curves = {d.id: outcome.results[f"{name}/curves/{d.id}"]["curves"] for d in devices}
        choices = {}
        for dev in devices:
            key = f"{name}/scalpel/{dev.id}/tolerance {TOLERANCE}"
            if key not in outcome.results:
                raise InputError(f"the report's {key} failed: {outcome.failures.get(key, '')}")
            table = outcome.results[key]["granularity"]
            first = table.iloc[0]
            layers = table.drop(columns=["model", "device", "group", "tolerance",
                                         "dense_accuracy", "final_accuracy"])
            choices[dev.id] = GranularityChoice(int(first["group"]), float(first["dense_accuracy"]),
                                                float(first["final_accuracy"]),
                                                layers.dropna(axis=1, how="all"))
        out.append(ModelStudy(name, description, data, accuracy, energy, curves, choices))
    points = outcome.table("points").reset_index(drop=True)
    points["pareto_energy"] = pareto(points, "energy")
    points["pareto_latency"] = pareto(points, "latency_s")
    tradeoff = TradeoffStudy(points, scalpel_vs_traditional(points), outcome.table("granularity"),
                             outcome.failures, outcome.summary())
    return ReportStudy(tuple(out), devices, tradeoff, seed)
