"""hwprune's systolic-array model side by side with SCALE-Sim (issue 19, item 3).

For AlexNet conv1-conv5 and five ResNet-50 layers (shapes from hwprune's built-in
``alexnet`` and ``resnet50``) on a 32 x 32 array, weight-, output- and
input-stationary, prints SCALE-Sim's cycles and SRAM reads and writes (ifmap reads,
filter reads, ofmap writes) beside hwprune's, with the relative error, and saves the
table to benchmarks/results/systolic.csv and .md.

hwprune's side is the accelerator latency model on benchmarks/systolic-32x32.toml
(SCALE-Sim's default configuration): ``cycles`` is its compute term (the systolic
schedule, :mod:`hwprune.latency.systolic`), ``hwprune_total`` / ``bound`` the whole
estimate with the DRAM term of the profile (SCALE-Sim's CALC mode has no DRAM limit).

SCALE-Sim runs in a virtual environment of its own (scalesim 3.0.0 needs numpy < 2
and pandas < 2.3 here)::

    python3 -m venv /tmp/scalesim-venv
    /tmp/scalesim-venv/bin/pip install scalesim==3.0.0 "numpy<2" "pandas<2.3"
    python benchmarks/validate_systolic.py [--scalesim-python /tmp/scalesim-venv/bin/python]
                                           [--full] [--jobs 2]

Layer shapes: SCALE-Sim has no padding, so its ifmap is the padded region the outputs
read, ``(E - 1) * stride + R`` high (and wide); it has no groups, so a grouped
convolution runs one group in SCALE-Sim and its counts are multiplied by the groups
(hwprune runs the groups one after another too). SCALE-Sim reports the index of its
last cycle, one less per run than hwprune's count of cycles; the table shows its
numbers as reported, so the offset shows in the error column.

By default SCALE-Sim runs its compute system (operand and demand matrices and the SRAM
counters its reports read; cycles = demand lines - 1, what its memory system returns
when nothing stalls, as in CALC mode) in about a minute. ``--full`` runs its whole
single-layer simulation, memory system included (about 4 000 cycles a second: some
20 minutes on one core for the 30 runs), and also reports its stall cycles.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

import hwprune
from hwprune.latency.accelerator import accelerator_latency
from hwprune.latency.systolic import systolic_layer
from hwprune.latency.work import KernelShape, kernel_work

HERE = Path(__file__).resolve().parent
PROFILE = HERE / "systolic-32x32.toml"
DRIVER = HERE / "scalesim_driver.py"
DEFAULT_PYTHON = os.environ.get("HWPRUNE_SCALESIM_PYTHON", "/tmp/scalesim-venv/bin/python")
LAYERS = [("alexnet", n) for n in ("conv1", "conv2", "conv3", "conv4", "conv5")] + [
    ("resnet50", n) for n in ("conv1", "layer1.0.conv2", "layer2.0.conv2", "layer3.1.conv1",
                              "layer4.0.conv3")]
DATAFLOWS = (("ws", "weight-stationary"), ("os", "output-stationary"), ("is", "input-stationary"))
INSTALL = ("SCALE-Sim not found at {path}. Install it in a virtual environment of its own:\n"
           "  python3 -m venv /tmp/scalesim-venv\n"
           "  /tmp/scalesim-venv/bin/pip install scalesim==3.0.0 'numpy<2' 'pandas<2.3'\n"
           "then pass --scalesim-python /tmp/scalesim-venv/bin/python "
           "(or set HWPRUNE_SCALESIM_PYTHON).")


def scalesim_query(layer, df: str, rows: int, cols: int, full: bool) -> dict:
    """SCALE-Sim's topology row for one group of ``layer`` (padded input region)."""
    op = layer.op
    r, s = op.kernel
    sh, sw = op.stride
    if sh != sw:
        raise SystemExit(f"{layer.name}: SCALE-Sim takes one stride, got {op.stride}")
    _, e, f = layer.output_shape
    g = op.groups
    return {"name": layer.name.replace(".", "_"), "h": (e - 1) * sh + r, "w": (f - 1) * sw + s,
            "r": r, "s": s, "c": layer.input_shape[0] // g, "m": layer.output_shape[0] // g,
            "stride": sh, "dataflow": df, "rows": rows, "cols": cols, "full": full}


def run_scalesim(python: str, query: dict) -> dict:
    out = subprocess.run([python, str(DRIVER)], input=json.dumps(query) + "\n",
                         capture_output=True, text=True, check=False)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"SCALE-Sim failed on {query['name']} {query['dataflow']}:\n"
                         + out.stderr[-2000:])
    return json.loads(lines[-1])


def err(ours: float, peer: float) -> float:
    return (ours - peer) / peer if peer else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scalesim-python", default=DEFAULT_PYTHON,
                    help="python of SCALE-Sim's virtual environment (default %(default)s)")
    ap.add_argument("--full", action="store_true",
                    help="run SCALE-Sim's memory system too (slow: ~20 min)")
    ap.add_argument("--jobs", type=int, default=2, help="SCALE-Sim runs at once")
    ap.add_argument("--only", default="",
                    help="comma-separated NETWORK:LAYER to run (default: all ten layers)")
    ap.add_argument("--out", default=str(HERE / "results" / "systolic.csv"))
    args = ap.parse_args(argv)
    if not Path(args.scalesim_python).exists():
        print(INSTALL.format(path=args.scalesim_python), file=sys.stderr)
        return 2
    dev = hwprune.device(str(PROFILE))
    rows, cols = dev.compute.array_rows, dev.compute.array_cols
    jobs = []
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    for net_name, layer_name in LAYERS:
        if only and f"{net_name}:{layer_name}" not in only:
            continue
        layer = hwprune.network(net_name)[layer_name]
        for df, long_name in DATAFLOWS:
            jobs.append((net_name, layer, df, long_name,
                         scalesim_query(layer, df, rows, cols, args.full)))
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        peers = list(pool.map(lambda j: run_scalesim(args.scalesim_python, j[4]), jobs))
    records = []
    for (net_name, layer, df, long_name, _), peer in zip(jobs, peers):
        g = layer.op.groups
        ours = systolic_layer(layer, rows, cols, df)
        work = kernel_work(KernelShape.of(layer), "dense", 1.0, dev.compute.simd_lanes)
        est = accelerator_latency(work, layer, dev, dataflow=long_name)
        rec = {"network": net_name, "layer": layer.name, "dataflow": df, "groups": g,
               "folds": ours.folds * g, "scalesim_mode": peer["mode"],
               "scalesim_stalls": peer["stall_cycles"]}
        for key, ours_v in (("cycles", est.parts["compute"]), ("ifmap_reads", ours.ifmap_reads),
                            ("filter_reads", ours.filter_reads),
                            ("ofmap_writes", ours.ofmap_writes)):
            peer_v = peer[key] * g
            rec[f"scalesim_{key}"] = peer_v
            rec[f"hwprune_{key}"] = ours_v
            rec[f"{key}_err"] = err(ours_v, peer_v)
        # SCALE-Sim's os counter adds rows + cols per fold (systolic_compute_os.py)
        rec["scalesim_ofmap_extra"] = rec["scalesim_ofmap_writes"] - ours.ofmap_writes
        rec["extra_is_fold_term"] = rec["scalesim_ofmap_extra"] == (
            ours.folds * g * (rows + cols) if df == "os" else 0)
        rec["hwprune_total"] = est.cycles
        rec["bound"] = est.bound
        records.append(rec)
    df = pd.DataFrame(records)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)
    show = df[["network", "layer", "dataflow", "folds", "scalesim_cycles", "hwprune_cycles",
               "cycles_err", "scalesim_ifmap_reads", "ifmap_reads_err", "scalesim_filter_reads",
               "filter_reads_err", "scalesim_ofmap_writes", "hwprune_ofmap_writes",
               "ofmap_writes_err", "hwprune_total", "bound"]]
    fmt = {c: "{:+.4%}".format for c in show.columns if c.endswith("_err")}
    text = show.to_string(index=False, formatters=fmt)
    print(text)
    worst = df["cycles_err"].abs().max()
    exact = {k: int((df[f"{k}_err"] == 0).sum()) for k in ("ifmap_reads", "filter_reads",
                                                            "ofmap_writes")}
    summary = (f"\n{len(df)} runs; cycles: largest |error| {worst:.4%} (target 1%); SRAM counts "
               f"equal to SCALE-Sim's: ifmap reads {exact['ifmap_reads']}/{len(df)}, filter reads "
               f"{exact['filter_reads']}/{len(df)}, ofmap writes {exact['ofmap_writes']}/{len(df)}"
               f" (every difference is SCALE-Sim's os counter adding rows + cols per fold: "
               f"{bool(df['extra_is_fold_term'].all())}); SCALE-Sim mode: "
               f"{df['scalesim_mode'].iloc[0]}"
               + (f", stall cycles {int(df['scalesim_stalls'].sum())}" if args.full else ""))
    print(summary)
    out.with_suffix(".md").write_text(
        "# hwprune vs SCALE-Sim 3.0.0, 32x32 array\n\n"
        "`python benchmarks/validate_systolic.py" + (" --full" if args.full else "") + "`\n\n"
        + "```\n" + text + "\n```\n" + summary + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
