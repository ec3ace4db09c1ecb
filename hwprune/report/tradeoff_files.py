"""The files of a trade-off study: ``tradeoff.csv``, ``scalpel-vs-traditional.csv`` and
one ``tradeoff-DEVICE.png`` per device, written into one directory as a set (staged and
moved in together, see :class:`~hwprune.report.output.OutputDirectory`). Both
``hwprune tradeoff`` and ``hwprune report`` write them through :func:`write_tradeoff_files`."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .output import OutputDirectory, csv_text, write_atomic
from .plots import draw_figures, plot_tradeoff


def write_tradeoff(out: str | Path, points, versus, devices: Sequence[str],
                   title: str = "{device}", force: bool = False, draw=None) -> list[Path]:
    """Write the study's files into directory ``out`` as one set; returns their paths.

    ``points``: the sweep with ``pareto_energy`` and ``pareto_latency`` columns
    (:class:`hwprune.studies.tradeoff.TradeoffStudy`); ``title``: the plot title, with
    ``{device}`` replaced by each device id. A non-empty ``out`` that hwprune did not
    make is refused unless ``force``
    (:func:`~hwprune.report.output.check_out_dir`). ``draw``: how the plots are drawn
    (:func:`~hwprune.report.plots.draw_figures`)."""
    out = Path(out)
    with OutputDirectory(out, force, "tradeoff") as stage:
        names = [p.name for p in write_tradeoff_files(stage, points, versus, devices, title, draw)]
    return [out / name for name in names]


def tradeoff_figures(out: Path, points, devices: Sequence[str], title: str = "{device}") -> list:
    """The plot of each device, as :func:`~hwprune.report.plots.draw_figures` jobs."""
    return [(plot_tradeoff, (points[points["device"] == dev], points["pareto_energy"],
                             points["pareto_latency"], title.format(device=dev)),
             out / f"tradeoff-{dev}.png") for dev in devices]


def write_tradeoff_files(out: Path, points, versus, devices: Sequence[str],
                         title: str = "{device}", draw=None) -> list[Path]:
    """Write the study's files straight into the existing directory ``out`` (a staging
    directory: :func:`write_tradeoff` and the HTML report call this)."""
    written = [out / "tradeoff.csv", out / "scalpel-vs-traditional.csv"]
    write_atomic(written[0], csv_text(points))
    write_atomic(written[1], csv_text(versus))
    figures = tradeoff_figures(out, points, devices, title)
    draw_figures(figures, draw)
    return written + [path for *_, path in figures]
