"""The files of a trade-off study: ``tradeoff.csv``, ``scalpel-vs-traditional.csv`` and
one ``tradeoff-DEVICE.png`` per device, written atomically into one directory. Both
``hwprune tradeoff`` and ``hwprune report`` write them through :func:`write_tradeoff`."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .output import write_atomic
from .plots import plot_tradeoff


def write_tradeoff(out: str | Path, points, versus, devices: Sequence[str],
                   title: str = "{device}") -> list[Path]:
    """Write the study's files into directory ``out``; returns their paths.

    ``points``: the sweep with ``pareto_energy`` and ``pareto_latency`` columns
    (:class:`hwprune.studies.tradeoff.TradeoffStudy`); ``title``: the plot title, with
    ``{device}`` replaced by each device id."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "tradeoff.csv", out / "scalpel-vs-traditional.csv"]
    write_atomic(written[0], points.to_csv(index=False))
    write_atomic(written[1], versus.to_csv(index=False))
    for dev in devices:
        png = out / f"tradeoff-{dev}.png"
        plot_tradeoff(points[points["device"] == dev], points["pareto_energy"],
                      points["pareto_latency"], title.format(device=dev), png)
        written.append(png)
    return written
