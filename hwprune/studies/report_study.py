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
from ..hardware.profile import DeviceProfile
from ..latency.network import default_schemes, latency_curves
from ..prune import models
from ..prune.adapter import ModelAdapter
from .scalpel import ScalpelResult, Trained, scalpel
from .tradeoff import TradeoffStudy, planned_steps, study

TOLERANCE = 0.01


@dataclass(frozen=True)
class ModelStudy:
    """One reference model: ``name``, ``description``, ``data`` (the data set's
    description), ``accuracy`` (dense, test fraction), per device id ``energy`` (the
    energy table, :func:`hwprune.api.energy`'s columns), ``curves`` (latency against
    density, :func:`hwprune.latency.network.latency_curves`'s columns) and
    ``scalpel`` (:class:`~hwprune.studies.scalpel.ScalpelResult`)."""

    name: str
    description: str
    data: str
    accuracy: float
    energy: dict[str, pd.DataFrame]
    curves: dict[str, pd.DataFrame]
    scalpel: dict[str, ScalpelResult]


@dataclass(frozen=True)
class ReportStudy:
    """The report's results: ``models`` (one :class:`ModelStudy` each), ``devices``,
    ``tradeoff`` (the sweep over all models), ``seed``."""

    models: tuple[ModelStudy, ...]
    devices: tuple[DeviceProfile, ...]
    tradeoff: TradeoffStudy
    seed: int


def report_steps(names: Sequence[str | ModelAdapter], devices: Sequence[DeviceProfile]) -> int:
    """Progress messages :func:`report_study` sends."""
    return sum(planned_steps(n, devices) for n in names) + len(names) * (1 + 3 * len(devices))


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
                 epochs: int | None = None) -> ReportStudy:
    """Train (reference models), cost, choose and sweep (module docstring). ``names``:
    reference model names or adapters; ``epochs``: fine-tuning per search trial and per
    trade-off point (default: each policy's own)."""
    say = progress or (lambda msg: None)
    out = []
    for model in names:
        start, description, data, accuracy = _start(model, seed)
        name = start.name
        say(f"{name}: trained, test accuracy {accuracy:.4f}")
        net = start.fresh().network()
        energy, curves, choices = {}, {}, {}
        for dev in devices:
            energy[dev.id] = network_energy(net, dev)
            say(f"{name}: energy on {dev.id}")
        for dev in devices:
            curves[dev.id] = latency_curves(net, dev, default_schemes(dev))
            say(f"{name}: break-even curves on {dev.id}")
        try:
            for dev in devices:
                choices[dev.id] = scalpel(start, dev, TOLERANCE, seed, epochs=epochs)
                say(f"{name}: granularity on {dev.id}")
        finally:
            start.restore()
        out.append(ModelStudy(name, description, data, accuracy, energy, curves, choices))
    return ReportStudy(tuple(out), tuple(devices), study(names, devices, seed, say, epochs), seed)
