"""Scalpel's per-layer choice on several devices as one engine study (``hwprune
granularity MODEL --device A,B,...``).

The searches (how far each scheme prunes the model within the tolerance) do not depend
on the device but for SIMD's group width, so each distinct search is one task, shared by
the devices that need it, and each device's choice is one task that runs when its
searches are done (:func:`~hwprune.studies.tradeoff.scalpel_tasks`, the tasks the
trade-off sweep and the report run for Scalpel). On one device the table equals
:func:`~hwprune.studies.scalpel.scalpel`'s; a torch module is put back as it came in
(each search starts from its state at the call).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import pandas as pd

from ..errors import InputError
from ..hardware.profile import DeviceProfile
from ..prune.adapter import ModelAdapter
from .engine import Runner, Task
from .tradeoff import scalpel_tasks
from .trained import Trained

STUDY_COLUMNS = ("model", "device", "group", "tolerance", "dense_accuracy", "final_accuracy")
"""Columns the study adds to :meth:`~hwprune.studies.choice.Choice.table`'s: the model,
the device id, the SIMD group width g, the tolerance (fraction), and the accuracies
(fractions, or the adapter's score) of the dense model and of the choice."""


@dataclass(frozen=True)
class GranularityStudy:
    """``layers``: one row per device and layer (:meth:`Choice.table`'s columns, then
    :data:`STUDY_COLUMNS`), devices in the order given; ``failures``: task key -> error
    of the tasks that failed; ``summary``: points run, taken from a store, failed."""

    layers: pd.DataFrame
    failures: dict = field(default_factory=dict)
    summary: str = ""


def granularity_tasks(model: str | ModelAdapter | Trained, devices: Sequence[DeviceProfile],
                      tolerance: float, seed: int = 0, epochs: int | None = None) -> list[Task]:
    """The study's tasks (module docstring)."""
    start = model if isinstance(model, Trained) else Trained(model, seed)
    return scalpel_tasks(start, start.name, tuple(devices), seed, (tolerance,), epochs)


def granularity_study(model: str | ModelAdapter, devices: Sequence[DeviceProfile],
                      tolerance: float = 0.01, seed: int = 0, epochs: int | None = None,
                      runner: Runner | None = None,
                      progress: Callable[[str], None] | None = None) -> GranularityStudy:
    """Scalpel on ``model`` (a reference model name or an adapter) for every device of
    ``devices`` (module docstring); ``runner``: where the tasks run (default: here)."""
    runner = runner or Runner()
    devices = tuple(devices)
    ids = [d.id for d in devices]
    if len(set(ids)) != len(ids):
        raise InputError(f"device {next(i for i in ids if ids.count(i) > 1)!r} is named twice")
    outcome = runner.run(granularity_tasks(model, devices, tolerance, seed, epochs), progress)
    layers = outcome.table("granularity")
    if layers.empty:
        raise InputError("no device's choice finished: " + outcome.summary())
    order = {d: i for i, d in enumerate(ids)}
    layers = layers.sort_values("device", key=lambda c: c.map(order), kind="stable")
    return GranularityStudy(layers.reset_index(drop=True), outcome.failures, outcome.summary())
