"""``hwprune report``: the whole story of the reference models on the devices, as one
HTML page with its PNG figures and CSV tables, in one directory.

It renders a :class:`~hwprune.studies.report_study.ReportStudy` it is given and
computes nothing: per-layer energy by memory level on each device; break-even plots
(latency against density per scheme); Scalpel's recommended granularity per device;
the trade-off sweeps (accuracy against energy and latency, Pareto fronts) and
Scalpel's speedup against traditional pruning. The files are written as one set: staged and moved in
together (:class:`~hwprune.report.output.OutputDirectory`).
Energies of a device with normalized costs are labelled MAC-equivalents.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from ..studies.report_study import ReportStudy
from .output import OutputDirectory, csv_text, write_atomic
from .plots import draw_figures, plot_breakeven
from .tradeoff_files import write_tradeoff_files

STYLE = """body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;color:#222}
table{border-collapse:collapse;font-size:12px;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;
padding:2px 6px;text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee}h2{border-bottom:1px solid #ddd;margin-top:2em}
.note{color:#555;font-size:13px}"""
CHOICE_COLUMNS = ["layer", "scheme", "density", "inputs_kept", "speedup", "energy_ratio", "reason"]


def _table(df: pd.DataFrame, digits: int = 4) -> str:
    return df.to_html(index=False, float_format=lambda v: f"{v:.{digits}g}", border=0)


def _unit_note(dev) -> str:
    return ("" if not dev.energy_normalized else
            " (energies are normalized: MAC-equivalents, one MAC = 1, not pJ)")


def render_report(out: str | Path, study: ReportStudy, minutes: float | None = None,
                  force: bool = False, draw=None) -> Path:
    """Write ``study`` into directory ``out`` as one set of files; returns the path of
    ``index.html``. A non-empty ``out`` that hwprune did not make is refused unless
    ``force`` (:func:`~hwprune.report.output.check_out_dir`). ``draw``: how the figures
    are drawn (:func:`~hwprune.report.plots.draw_figures`; a study's open runner draws
    them on its workers)."""
    target = Path(out)
    with OutputDirectory(target, force, "report") as stage:
        _render(stage, study, minutes, draw)
    return target / "index.html"


def _render(out: Path, study: ReportStudy, minutes: float | None, draw=None) -> None:
    devices = study.devices
    parts: list[str] = []
    figures: list[tuple] = []
    for m in study.models:
        parts.append(f"<h2>{html.escape(m.name)}: {html.escape(m.description)}</h2>")
        parts.append(f"<p class=note>{html.escape(m.data)}. Dense test accuracy "
                     f"{m.accuracy:.4f}.</p>")
        parts.append("<h3>Energy per layer (dense, batch 1)</h3>")
        for dev in devices:
            energy = m.energy[dev.id]
            write_atomic(out / f"{m.name}-{dev.id}-energy.csv", csv_text(energy))
            cols = ["layer", "macs", "energy_pj"] + [c for c in energy.columns
                                                     if c.endswith("_pj") and c != "energy_pj"]
            shown = energy[cols]
            if dev.energy_normalized:
                shown = shown.rename(columns=lambda c: c.replace("_pj", "_mac_eq"))
            parts.append(f"<h4>{html.escape(dev.id)}{html.escape(_unit_note(dev))}</h4>"
                         + _table(shown))
        parts.append("<h3>Break-even: latency against density</h3>")
        for dev in devices:
            png = f"{m.name}-{dev.id}-breakeven.png"
            figures.append((plot_breakeven, (m.curves[dev.id],
                                             f"{m.name} on {dev.id}: latency against density"),
                            out / png))
            parts.append(f"<h4>{html.escape(dev.id)}</h4><img src='{html.escape(png)}'>")
        parts.append("<h3>Recommended granularity (Scalpel policy, tolerance 0.01)</h3>"
                     "<p class=note>speedup and energy_ratio: the layer as chosen against the "
                     "unpruned layer; inputs_kept below 1: units removed before the layer "
                     "shrank it.</p>")
        for dev in devices:
            r = m.scalpel[dev.id]
            table = r.layers
            write_atomic(out / f"{m.name}-{dev.id}-granularity.csv", csv_text(table))
            parts.append(f"<h4>{html.escape(dev.id)} (g = {r.group}): accuracy {r.dense_accuracy:.4f} → "
                         f"{r.final_accuracy:.4f}</h4>" + _table(table[CHOICE_COLUMNS]))
    points, versus = study.tradeoff.points, study.tradeoff.versus
    draw_figures(figures, draw)             # at once, on the workers if there are any
    write_tradeoff_files(out, points, versus, [d.id for d in devices], draw=draw)
    normalized = [d.id for d in devices if d.energy_normalized]
    parts.append("<h2>Trade-offs: accuracy against simulated energy and latency</h2>")
    parts.append("<p class=note>Every policy point is pruned from the same trained model and "
                 "measured on the test set; energy and latency are simulated at batch 1, with "
                 "node-pruned units removed; the line marks the Pareto front. Energies are in "
                 "each device's own unit (the energy_unit column"
                 + (f"; {', '.join(normalized)}: MAC-equivalents" if normalized else "")
                 + "). All points: tradeoff.csv.</p>")
    for dev in devices:
        png = html.escape(f"tradeoff-{dev.id}.png")
        parts.append(f"<h3>{html.escape(dev.id)}</h3><img src='{png}'>")
    parts.append("<h2>Scalpel against traditional pruning (tolerance 0.01)</h2>"
                 "<p class=note>Speedup over dense of Han et al.'s magnitude pruning at its lowest "
                 "density within the tolerance, and of Scalpel's per-layer choice. Scalpel reports "
                 "its advantage largest on the microcontroller and traditional pruning slowing the "
                 "GPU down; these are hwprune's numbers, whatever they show.</p>" + _table(versus))
    names = ", ".join(m.name for m in study.models)
    built = "" if minutes is None else f"; built in {minutes:.1f} min"
    page = (f"<!doctype html><html><head><meta charset=utf-8><title>hwprune report</title>"
            f"<style>{STYLE}</style></head><body><h1>hwprune report</h1>"
            f"<p class=note>Models {html.escape(names)} on "
            f"{html.escape(', '.join(d.id for d in devices))}; seed {study.seed}{built}.</p>"
            + "".join(parts) + "</body></html>")
    write_atomic(out / "index.html", page)
