"""Validate the cpu latency model on this machine: predicted against measured time of
hwprune's numba matrix-vector kernels over shapes x formats x densities.

1. Calibrate this machine (``hwprune.hardware.calibrate``: in-cache micro-benchmarks,
   the *fit* set) unless ``--profile FILE`` gives a calibrated profile.
2. Time every point of the *scored* grid (shapes different from the fit set, most of
   them larger than L2), the fastest of ``--repeats`` calls (on this shared 2-core
   machine other work only adds time; medians moved by +-25% between runs), and
   predict it with the cpu model on that profile.
3. Report the error distribution (predicted / measured - 1), the share of points
   within +-15%, and per shape and format the measured and predicted break-even
   density (interpolated on the density grid) and their difference.

Run:  python benchmarks/validate_latency.py [--profile host.toml] [--repeats 7] [--out results/latency.csv]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import hwprune
from hwprune.hardware.calibrate import best_seconds, calibrate
from hwprune.latency.cpu import cpu_latency
from hwprune.latency.network import crossing
from hwprune.latency.work import KernelShape, kernel_work
from hwprune.sparse import formats as F
from hwprune.sparse import kernels as K
from hwprune.sparse.masks import random_mask

SHAPES = [("alexnet-fc6", 4096, 9216), ("alexnet-fc7", 4096, 4096), ("alexnet-fc8", 1000, 4096),
          ("vgg-fc7-half", 2048, 4096), ("lenet300-fc1", 300, 784), ("mid-1024", 1024, 1024),
          ("tall-8192x512", 8192, 512)]
FORMATS = ("dense", "csr", "group-csr", "compact")
DENSITIES = (1.0, 0.7, 0.5, 0.35, 0.25, 0.15, 0.1, 0.05, 0.02)


def measure(scheme: str, rows: int, cols: int, density: float, repeats: int,
            rng: np.random.Generator) -> float:
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    x = rng.standard_normal(cols).astype(np.float32)
    y = np.empty(rows, dtype=np.float32)
    if scheme == "dense":
        def call():
            K.dense_matvec(w, x, y)
    elif scheme == "csr":
        m = F.CSRMatrix.from_dense(w, random_mask("fine", rows, cols, density, rng))

        def call():
            K.csr_matvec(m.data, m.indices, m.indptr, x, y)
    elif scheme == "group-csr":
        m = F.GroupCSRMatrix.from_dense(w, random_mask("group", rows, cols, density, rng, 8), 8)
        xp = np.zeros(-(-cols // 8) * 8, dtype=np.float32)
        xp[:cols] = x

        def call():
            K.group_matvec8(m.data, m.group_col, m.indptr, xp, y)
    else:
        m = F.CompactMatrix.from_dense(w, random_mask("rows", rows, cols, density, rng))

        def call():
            K.compact_matvec(m.values, m.row_index, m.col_index, x, y)
    return best_seconds(call, repeats)


def measured_crossing(curve: pd.DataFrame, dense: float) -> float:
    """Largest density faster than dense, linearly interpolated between grid points."""
    pts = curve.sort_values("density", ascending=False)[["density", "measured_s"]].to_numpy()
    if pts[0, 1] < dense:
        return 1.0
    for (d0, t0), (d1, t1) in zip(pts, pts[1:]):
        if t1 < dense:
            return d1 + (d0 - d1) * (dense - t1) / (t0 - t1)
    return float("nan")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", help="a calibrated profile (default: calibrate now)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", help="write the per-point table as CSV")
    parser.add_argument("--from-csv", help="report on a table written by --out instead of "
                                           "measuring again (predictions are recomputed)")
    args = parser.parse_args(argv)
    if args.profile:
        dev = hwprune.device(args.profile)
    else:
        print("calibrating this machine ...", file=sys.stderr)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "host.toml"
            path.write_text(calibrate())
            dev = hwprune.device(str(path))
    if args.from_csv:
        df = pd.read_csv(args.from_csv)
        df["predicted_s"] = [cpu_latency(kernel_work(KernelShape(rows=r.rows, cols=r.cols, n=1), r.scheme,
                                                     r.density, dev.compute.simd_lanes), dev).seconds
                             for r in df.itertuples()]
        return report(df, dev, args.out)
    rng = np.random.default_rng(1)
    rows = []
    for name, m, k in SHAPES:
        shape = KernelShape(rows=m, cols=k, n=1)
        for scheme in FORMATS:
            for d in (DENSITIES if scheme != "dense" else (1.0,)):
                print(f"\r{name} {scheme} {d}      ", end="", file=sys.stderr)
                t = measure(scheme, m, k, d, args.repeats, rng)
                est = cpu_latency(kernel_work(shape, scheme, d, dev.compute.simd_lanes), dev)
                rows.append({"shape": name, "rows": m, "cols": k, "scheme": scheme, "density": d,
                             "measured_s": t, "predicted_s": est.seconds, "bound": est.bound})
    print("", file=sys.stderr)
    return report(pd.DataFrame(rows), dev, args.out)


def report(df: pd.DataFrame, dev, out: str | None) -> int:
    """Print the error distribution and the break-even comparison; write ``out``."""
    df["error"] = df["predicted_s"] / df["measured_s"] - 1
    if out:
        df.to_csv(out, index=False)
    err = df["error"]
    within = (err.abs() <= 0.15).mean()
    q = err.quantile([0.05, 0.25, 0.5, 0.75, 0.95])
    print(f"{len(df)} points; within +-15%: {within:.0%} (target 90%)")
    print("error quantiles (predicted/measured - 1): "
          + ", ".join(f"p{int(k * 100)} {v:+.1%}" for k, v in q.items()))
    print(f"worst: {err.abs().max():.1%}; mean |error| {err.abs().mean():.1%}")
    print(df.groupby("scheme")["error"].describe()[["mean", "min", "50%", "max"]].round(3)
          .to_string())
    table = []
    for name, m, k in SHAPES:
        dense_m = df[(df["shape"] == name) & (df["scheme"] == "dense")]["measured_s"].iloc[0]
        shape = KernelShape(rows=m, cols=k, n=1)
        dense_p = cpu_latency(kernel_work(shape, "dense", 1.0, dev.compute.simd_lanes), dev).seconds
        for scheme in FORMATS[1:]:
            curve = df[(df["shape"] == name) & (df["scheme"] == scheme)]
            meas = measured_crossing(curve, dense_m)

            def at(d, scheme=scheme, shape=shape):
                return cpu_latency(kernel_work(shape, scheme, d, dev.compute.simd_lanes), dev).seconds
            pred = crossing(at, dense_p)
            table.append({"shape": name, "scheme": scheme, "measured": meas, "predicted": pred,
                          "difference_pp": (pred - meas) * 100})
    be = pd.DataFrame(table)
    print("\nbreak-even density (below it the format beats dense):")
    print(be.round(3).to_string(index=False))
    ok = (be["difference_pp"].abs() <= 5) | (be["measured"].isna() & be["predicted"].isna())
    print(f"within 5 percentage points: {ok.sum()} of {len(be)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
