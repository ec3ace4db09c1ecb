"""``hwprune report``: the whole story of the reference models on the four devices, as
one HTML page with its PNG figures and CSV tables, in one directory.

Sections: per-layer energy by memory level on each device; break-even plots (latency
against density per format); Scalpel's recommended granularity per device; the
trade-off sweeps (accuracy against energy and latency, Pareto fronts) and Scalpel's
speedup against traditional pruning. Every file is written atomically.
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..cost.energy import network_energy
from ..hardware.profile import DeviceProfile
from ..latency.network import latency_curves
from ..prune import models
from ..prune.scalpel import scalpel
from ..prune.tradeoff import pareto, planned_steps, scalpel_vs_traditional, sweep
from .output import write_atomic
from .plots import plot_breakeven, plot_tradeoff
from .progress import Progress

BREAKEVEN_SCHEMES = ("csr", "group-csr", "compact")
STYLE = """body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;color:#222}
table{border-collapse:collapse;font-size:12px;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;
padding:2px 6px;text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee}h2{border-bottom:1px solid #ddd;margin-top:2em}
.note{color:#555;font-size:13px}"""


def _table(df: pd.DataFrame, digits: int = 4) -> str:
    return df.to_html(index=False, float_format=lambda v: f"{v:.{digits}g}", border=0)


def build_report(out: str | Path, devices: Sequence[DeviceProfile],
                 names: Sequence[str] = tuple(models.MODELS), seed: int = 0) -> Path:
    """Write the report into directory ``out``; returns the path of ``index.html``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    total = sum(planned_steps(n, devices) for n in names) + len(names) * (1 + 3 * len(devices))
    bar = Progress(total)
    parts: list[str] = []
    all_points = []
    for name in names:
        model, data = models.trained(name, seed)
        bar(f"{name}: trained, test accuracy {model.accuracy(data.x_test, data.y_test):.4f}")
        net = models.to_network(model)
        parts.append(f"<h2>{html.escape(name)}: {html.escape(models.spec(name).description)}</h2>")
        parts.append(f"<p class=note>{html.escape(data.description)}. Dense test accuracy "
                     f"{model.accuracy(data.x_test, data.y_test):.4f}.</p>")
        parts.append("<h3>Energy per layer (dense, batch 1)</h3>")
        for dev in devices:
            energy = network_energy(net, dev)
            write_atomic(out / f"{name}-{dev.id}-energy.csv", energy.to_csv(index=False))
            cols = ["layer", "macs", "energy_pj"] + [c for c in energy.columns
                                                     if c.endswith("_pj") and c != "energy_pj"]
            parts.append(f"<h4>{html.escape(dev.id)}</h4>" + _table(energy[cols]))
            bar(f"{name}: energy on {dev.id}")
        parts.append("<h3>Break-even: latency against density</h3>")
        for dev in devices:
            png = f"{name}-{dev.id}-breakeven.png"
            plot_breakeven(latency_curves(net, dev, BREAKEVEN_SCHEMES),
                           f"{name} on {dev.id}: latency against density", out / png)
            parts.append(f"<h4>{html.escape(dev.id)}</h4><img src='{png}'>")
            bar(f"{name}: break-even curves on {dev.id}")
        parts.append("<h3>Recommended granularity (Scalpel policy, tolerance 0.01)</h3>")
        for dev in devices:
            r = scalpel(name, dev, 0.01, seed)
            write_atomic(out / f"{name}-{dev.id}-granularity.csv", r.layers.to_csv(index=False))
            parts.append(f"<h4>{html.escape(dev.id)} (g = {r.group}): accuracy {r.dense_accuracy:.4f} → "
                         f"{r.final_accuracy:.4f}</h4>"
                         + _table(r.layers[["layer", "scheme", "density", "speedup", "energy_ratio",
                                            "reason"]]))
            bar(f"{name}: granularity on {dev.id}")
        all_points.append(sweep(name, devices, seed, bar))
    points = pd.concat(all_points, ignore_index=True)
    points["pareto_energy"] = pareto(points, "energy_pj")
    points["pareto_latency"] = pareto(points, "latency_s")
    write_atomic(out / "tradeoff.csv", points.to_csv(index=False))
    parts.append("<h2>Trade-offs: accuracy against simulated energy and latency</h2>")
    parts.append("<p class=note>Every policy point is pruned from the same trained model and "
                 "measured on the test set; energy and latency are simulated at batch 1, with "
                 "node-pruned units removed; the line marks the Pareto front. All points: "
                 "tradeoff.csv.</p>")
    for dev in devices:
        png = f"tradeoff-{dev.id}.png"
        sel = points[points["device"] == dev.id]
        plot_tradeoff(sel, points["pareto_energy"], points["pareto_latency"], dev.id, out / png)
        parts.append(f"<h3>{html.escape(dev.id)}</h3><img src='{png}'>")
    versus = scalpel_vs_traditional(points)
    write_atomic(out / "scalpel-vs-traditional.csv", versus.to_csv(index=False))
    parts.append("<h2>Scalpel against traditional pruning (tolerance 0.01)</h2>"
                 "<p class=note>Speedup over dense of Han et al.'s magnitude pruning at its lowest "
                 "density within the tolerance, and of Scalpel's per-layer choice. Scalpel reports "
                 "its advantage largest on the microcontroller and traditional pruning slowing the "
                 "GPU down; these are hwprune's numbers, whatever they show.</p>" + _table(versus))
    minutes = (time.perf_counter() - start) / 60
    page = (f"<!doctype html><html><head><meta charset=utf-8><title>hwprune report</title>"
            f"<style>{STYLE}</style></head><body><h1>hwprune report</h1>"
            f"<p class=note>Reference models {', '.join(names)} on {', '.join(d.id for d in devices)}; "
            f"seed {seed}; built in {minutes:.1f} min.</p>" + "".join(parts) + "</body></html>")
    write_atomic(out / "index.html", page)
    bar.close()
    return out / "index.html"
