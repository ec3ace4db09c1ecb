"""Validate the cpu latency model on this machine: predicted against measured time of
hwprune's numba matrix-vector kernels over shapes x formats x densities.

1. Calibrate this machine (``hwprune calibrate``: micro-benchmarks, the stream
   bandwidth curve, and the matrix-vector parameters fitted on the *fit set*,
   ``hwprune.calibrate.matvec_fit.FIT_SHAPES``) unless ``--profile FILE`` gives a
   calibrated profile.
2. Time every point of the *scored* grid (shapes none of which is in the fit set) in
   ``--passes`` passes over the whole grid, the shapes in a different order each pass;
   a pass times a point as the fastest of at least ``--repeats`` calls spread over at
   least ``--spread`` seconds, on the same matrix every pass. A point's time is its
   fastest pass: on a shared machine other work only adds time, and a burst of it can
   last minutes, so one pass would bias whole shapes. How far the passes disagree
   (slowest / fastest - 1 per point) is reported as the measurement's own noise.
   Predict each point with the cpu model on the profile.
3. Report the error distribution (predicted / measured - 1), the share of points
   within +-15%, and per shape and format the measured and predicted break-even
   density (interpolated on the density grid) and their difference.

Run:  python benchmarks/validate_latency.py [--profile host.toml] [--passes 3] [--repeats 7]
          [--spread 0.1] [--out results/latency.csv]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import hwprune
from hwprune.calibrate.host import calibrate
from hwprune.calibrate.matvec_fit import FIT_SHAPES, best_seconds, kernel_call
from hwprune.latency.cpu import cpu_latency
from hwprune.latency.network import crossing
from hwprune.latency.work import KernelShape, kernel_work

SHAPES = [("alexnet-fc6", 4096, 9216), ("alexnet-fc7", 4096, 4096), ("alexnet-fc8", 1000, 4096),
          ("vgg-fc7-half", 2048, 4096), ("lenet300-fc1", 300, 784), ("mid-1024", 1024, 1024),
          ("tall-8192x512", 8192, 512)]
FORMATS = ("dense", "csr", "group-csr", "compact")
DENSITIES = (1.0, 0.7, 0.5, 0.35, 0.25, 0.15, 0.1, 0.05, 0.02)
BISECT_STEPS = 3
"""Extra measurements per shape and format that narrow the measured break-even from its
grid interval to an eighth of it (linear interpolation within that)."""


def measure(scheme: str, rows: int, cols: int, density: float, repeats: int, spread: float,
            rng: np.random.Generator) -> float:
    """Seconds of one kernel call: the fastest of at least ``repeats`` calls spread over
    at least ``spread`` seconds (the same protocol as the calibration's fit set)."""
    return best_seconds(kernel_call(scheme, rows, cols, density, rng), repeats, spread)


def measured_crossing(curve: pd.DataFrame, dense: float) -> float:
    """Largest density faster than dense, linearly interpolated between the measured
    points (grid and bisection) around the first crossing from density 1."""
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
    parser.add_argument("--repeats", type=int, default=7, help="at least this many timed calls")
    parser.add_argument("--spread", type=float, default=0.1,
                        help="and over at least this many seconds per point and pass (default 0.1)")
    parser.add_argument("--passes", type=int, default=3,
                        help="passes over the grid, shapes shuffled each pass; a point keeps its "
                             "fastest (default 3)")
    parser.add_argument("--out", help="write the per-point table as CSV")
    parser.add_argument("--from-csv", help="report on a table written by --out instead of "
                                           "measuring again (predictions are recomputed)")
    args = parser.parse_args(argv)
    if args.passes < 1:
        parser.error("--passes must be >= 1")
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
    fit = {(r, c) for r, c in FIT_SHAPES}
    assert not fit & {(m, k) for _, m, k in SHAPES}, "a scored shape is in the fit set"
    rows = grid_rows(dev, args.passes, args.repeats, args.spread)
    df = pd.DataFrame(rows)
    rng = np.random.default_rng(1)
    extra = []
    for name, m, k in SHAPES:
        shape = KernelShape(rows=m, cols=k, n=1)
        dense = df[(df["shape"] == name) & (df["scheme"] == "dense")]["measured_s"].iloc[0]
        for scheme in FORMATS[1:]:
            curve = df[(df["shape"] == name) & (df["scheme"] == scheme)]
            for d in bisect_densities(curve, dense, lambda d, s=scheme, m=m, k=k:
                                      measure(s, m, k, d, args.repeats,
                                              args.spread * args.passes, rng)):
                est = cpu_latency(kernel_work(shape, scheme, d[0], dev.compute.simd_lanes), dev)
                print(f"\r{name} {scheme} break-even {d[0]:.3f}      ", end="", file=sys.stderr)
                extra.append({"shape": name, "rows": m, "cols": k, "scheme": scheme,
                              "density": d[0], "measured_s": d[1], "predicted_s": est.seconds,
                              "bound": est.bound, "point": "bisect"})
    print("", file=sys.stderr)
    return report(pd.concat([df, pd.DataFrame(extra)], ignore_index=True), dev, args.out)


def grid_rows(dev, passes: int, repeats: int, spread: float) -> list[dict]:
    """Measure and predict every grid point; ``measured_s`` is the fastest of ``passes``
    passes (shapes in a new order each pass, one fixed matrix per point), ``pass_spread``
    the slowest pass over the fastest, minus 1."""
    points = [(si, fi, di) for si in range(len(SHAPES)) for fi, scheme in enumerate(FORMATS)
              for di, _ in enumerate(DENSITIES if scheme != "dense" else (1.0,))]
    times: dict[tuple[int, int, int], list[float]] = {p: [] for p in points}
    for p in range(passes):
        order = np.random.default_rng(100 + p).permutation(len(SHAPES))
        for si in order:
            name, m, k = SHAPES[si]
            for pt in (q for q in points if q[0] == si):
                scheme = FORMATS[pt[1]]
                d = DENSITIES[pt[2]] if scheme != "dense" else 1.0
                print(f"\rpass {p + 1}/{passes} {name} {scheme} {d}      ", end="", file=sys.stderr)
                rng = np.random.default_rng([1, *pt])      # the same matrix every pass
                times[pt].append(measure(scheme, m, k, d, repeats, spread, rng))
    rows = []
    for si, fi, di in points:
        name, m, k = SHAPES[si]
        scheme = FORMATS[fi]
        d = DENSITIES[di] if scheme != "dense" else 1.0
        t = times[(si, fi, di)]
        est = cpu_latency(kernel_work(KernelShape(rows=m, cols=k, n=1), scheme, d,
                                      dev.compute.simd_lanes), dev)
        rows.append({"shape": name, "rows": m, "cols": k, "scheme": scheme, "density": d,
                     "measured_s": min(t), "predicted_s": est.seconds, "bound": est.bound,
                     "point": "grid", "pass_spread": max(t) / min(t) - 1})
    return rows


def bisect_densities(curve: pd.DataFrame, dense: float, measure_at, steps: int = BISECT_STEPS):
    """Measure ``steps`` more densities, each halving the grid interval in which the
    format's time first falls below ``dense``: yields ``(density, seconds)``."""
    pts = curve.sort_values("density", ascending=False)[["density", "measured_s"]].to_numpy()
    if pts[0, 1] < dense:
        return
    for (d0, t0), (d1, t1) in zip(pts, pts[1:]):
        if t1 < dense:
            break
    else:
        return
    for _ in range(steps):
        mid = (d0 + d1) / 2
        t = measure_at(mid)
        yield mid, t
        if t < dense:
            d1 = mid
        else:
            d0 = mid


def report(df: pd.DataFrame, dev, out: str | None) -> int:
    """Print the error distribution (grid points) and the break-even comparison (grid
    and bisection points); write ``out``."""
    df["error"] = df["predicted_s"] / df["measured_s"] - 1
    if "point" not in df:
        df["point"] = "grid"
    if out:
        df.to_csv(out, index=False)
    grid = df[df["point"] == "grid"]
    err = grid["error"]
    within = (err.abs() <= 0.15).mean()
    q = err.quantile([0.05, 0.25, 0.5, 0.75, 0.95])
    print(f"{len(grid)} grid points; within +-15%: {within:.0%} (target 90%)")
    print("error quantiles (predicted/measured - 1): "
          + ", ".join(f"p{int(k * 100)} {v:+.1%}" for k, v in q.items()))
    print(f"worst: {err.abs().max():.1%}; mean |error| {err.abs().mean():.1%}")
    if "pass_spread" in grid and grid["pass_spread"].notna().any():
        noise = grid["pass_spread"]
        print(f"measurement noise (slowest / fastest pass - 1): median {noise.median():.1%}, "
              f"p90 {noise.quantile(0.9):.1%}; passes within 15% of each other at "
              f"{(noise <= 0.15).mean():.0%} of points")
    bisect = df[df["point"] == "bisect"]["error"]
    if len(bisect):
        print(f"{len(bisect)} bisection points (not in the above): within +-15% "
              f"{(bisect.abs() <= 0.15).mean():.0%}, median {bisect.median():+.1%}")
    print(grid.groupby("scheme")["error"].describe()[["mean", "min", "50%", "max"]].round(3)
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
