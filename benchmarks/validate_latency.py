"""Validate the cpu latency model on this machine: predicted against measured
sparse/dense time ratio of the matrix-vector kernels over shapes x formats x densities.

The dense baseline is the host's BLAS GEMV (numpy ``W @ x``); compact is a gather of
the kept columns and a BLAS GEMV on the smaller matrix; csr and group-csr are hwprune's
numba kernels. Every kernel runs on one thread (threadpoolctl), as the model does.

1. Calibrate this machine (``hwprune calibrate``: micro-benchmarks, the BLAS GEMM, the
   stream bandwidth curve, and the matrix-vector parameters fitted on the *fit set*,
   ``hwprune.calibrate.matvec_fit.FIT_SHAPES``) unless ``--profile FILE`` gives a
   calibrated profile.
2. Interleaved protocol: in each of ``--passes`` passes over the *scored* grid (shapes
   none of which is in the fit set, in a different order each pass), every (shape,
   format, density) point times the dense GEMV and then the sparse kernel back to back,
   each the fastest of at least ``--repeats`` calls spread over at least ``--spread``
   seconds, on the same matrices every pass. The pass's ratio is sparse / dense; a
   point's measured ratio is the median over passes (other tenants slow both halves of
   a pair alike; a burst that hits one half is outvoted). How far the passes' ratios
   disagree (largest / smallest - 1) is reported as the measurement's own noise.
   With ``--interleave-gemv`` one pass of the GEMV bandwidth curve (``hwprune
   calibrate``'s own measurement, :func:`hwprune.calibrate.host.gemv_curve`, on the
   profile's footprints) is timed before each validation pass and once after the
   last, and the model prices the dense and compact GEMVs on the best of those passes
   (what ``calibrate`` does with its three passes), so the calibration and the
   validation see the host at the same time: on a shared VM the GEMV's speed drifts
   by ~10% over minutes, which the sparse/dense ratio does not cancel.
3. Report per point the predicted ratio (model sparse / model dense) against the
   measured one: the error distribution (predicted / measured - 1: p5, p25, median,
   p75, p95), the share within +-15% (target: >= 90%), and per shape and format the
   measured and predicted break-even density (where the ratio crosses 1; the measured
   one narrowed by ``BISECT_STEPS`` more pairs) and their difference (target: within 5
   points for >= 18 of the 21 pairs).

Run:  python benchmarks/validate_latency.py [--profile host.toml] [--passes 3] [--repeats 7]
          [--spread 0.1] [--shapes NAME,...] [--interleave-gemv] [--out results/latency.csv]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import hwprune
from hwprune.calibrate.host import (
    calibrate,
    curve_footprints,
    gemv_bandwidth,
    gemv_shape,
    non_increasing_from_above,
)
from hwprune.calibrate.matvec_fit import FIT_SHAPES, best_seconds, kernel_call, one_thread
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


def measure_pair(scheme: str, rows: int, cols: int, density: float, repeats: int, spread: float,
                 seed) -> tuple[float, float]:
    """(dense seconds, sparse seconds) of one call each, timed back to back: each the
    fastest of at least ``repeats`` calls spread over at least ``spread`` seconds."""
    dense = kernel_call("dense", rows, cols, 1.0, np.random.default_rng(seed))
    sparse = kernel_call(scheme, rows, cols, density, np.random.default_rng(seed))
    return best_seconds(dense, repeats, spread), best_seconds(sparse, repeats, spread)


def predicted_ratio(dev, rows: int, cols: int, scheme: str, density: float) -> float:
    shape = KernelShape(rows=rows, cols=cols, n=1)
    lanes = dev.compute.simd_lanes
    return (cpu_latency(kernel_work(shape, scheme, density, lanes), dev).seconds
            / cpu_latency(kernel_work(shape, "dense", 1.0, lanes), dev).seconds)


def measured_crossing(curve: pd.DataFrame) -> float:
    """Largest density whose measured ratio is below 1, linearly interpolated between
    the measured points (grid and bisection) around the first crossing from density 1."""
    pts = curve.sort_values("density", ascending=False)[["density", "measured_ratio"]].to_numpy()
    if pts[0, 1] < 1:
        return 1.0
    for (d0, r0), (d1, r1) in zip(pts, pts[1:]):
        if r1 < 1:
            return d1 + (d0 - d1) * (1 - r1) / (r0 - r1)
    return float("nan")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", help="a calibrated profile (default: calibrate now)")
    parser.add_argument("--repeats", type=int, default=7, help="at least this many timed calls")
    parser.add_argument("--spread", type=float, default=0.1,
                        help="and over at least this many seconds per kernel and pass (default 0.1)")
    parser.add_argument("--passes", type=int, default=3,
                        help="passes over the grid, shapes shuffled each pass; a point keeps the "
                             "median of its passes' ratios (default 3)")
    parser.add_argument("--shapes", help="comma-separated shape names to score (default: all "
                                         "of " + ", ".join(n for n, _, _ in SHAPES) + ")")
    parser.add_argument("--interleave-gemv", action="store_true",
                        help="time one pass of the GEMV bandwidth curve before each validation pass "
                             "and after the last, and price the dense GEMV on their best (the "
                             "calibration taken at the time of the validation)")
    parser.add_argument("--out", help="write the per-point table as CSV")
    parser.add_argument("--from-csv", help="report on a table written by --out instead of "
                                           "measuring again (predictions are recomputed)")
    args = parser.parse_args(argv)
    if args.passes < 1:
        parser.error("--passes must be >= 1")
    shapes = SHAPES
    if args.shapes:
        wanted = args.shapes.split(",")
        unknown = sorted(set(wanted) - {n for n, _, _ in SHAPES})
        if unknown:
            parser.error(f"unknown shape {unknown[0]!r}; accepted: " + ", ".join(n for n, _, _ in SHAPES))
        shapes = [s for s in SHAPES if s[0] in wanted]
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
        df["predicted_ratio"] = [predicted_ratio(dev, r.rows, r.cols, r.scheme, r.density)
                                 for r in df.itertuples()]
        return report(df, dev, args.out, shapes)
    fit = {(r, c) for r, c in FIT_SHAPES}
    assert not fit & {(m, k) for _, m, k in SHAPES}, "a scored shape is in the fit set"
    # Nor is one a matrix of the GEMV bandwidth curve (any footprint grid calibrate uses).
    curve = {gemv_shape(f) for step in (2 ** 0.5, 4.0) for f in curve_footprints(1 << 31, step)}
    assert not curve & {(m, k) for _, m, k in SHAPES}, "a scored shape is on the GEMV curve"
    if args.interleave_gemv and not dev.gemv_bandwidth:
        parser.error("--interleave-gemv needs a profile with a [gemv_bandwidth] curve")
    with one_thread():
        gemv_passes: list[dict[float, float]] = []
        calibrated_gemv = dev.gemv_bandwidth

        def between_passes():
            if args.interleave_gemv:
                print("\rGEMV bandwidth curve ...          ", end="", file=sys.stderr)
                gemv_passes.append({f: gemv_bandwidth(int(f)) / dev.clock_hz
                                    for f, _ in dev.gemv_bandwidth})
        measured = grid_measurements(shapes, args.passes, args.repeats, args.spread, between_passes)
        if gemv_passes:
            dev = interleaved_profile(dev, gemv_passes)
        df = pd.DataFrame(grid_rows(dev, shapes, measured))
        extra = []
        for name, m, k in shapes:
            for scheme in FORMATS[1:]:
                curve = df[(df["shape"] == name) & (df["scheme"] == scheme)]

                def at(d, s=scheme, m=m, k=k):
                    dense, sparse = measure_pair(s, m, k, d, args.repeats, args.spread * args.passes,
                                                 [2, m, k, int(d * 1e6)])
                    return sparse / dense
                for d, ratio in bisect_densities(curve, at):
                    print(f"\r{name} {scheme} break-even {d:.3f}      ", end="", file=sys.stderr)
                    extra.append({"shape": name, "rows": m, "cols": k, "scheme": scheme,
                                  "density": d, "measured_ratio": ratio,
                                  "predicted_ratio": predicted_ratio(dev, m, k, scheme, d),
                                  "point": "bisect"})
    print("", file=sys.stderr)
    if gemv_passes:
        print("GEMV bandwidth curve interleaved with the passes (bytes/cycle; calibrated -> "
              "validation): " + ", ".join(
                  f"{int(f) >> 10} KiB {b0:.3g} -> {b1:.3g}"
                  for (f, b0), (_, b1) in zip(calibrated_gemv, dev.gemv_bandwidth)))
    return report(pd.concat([df, pd.DataFrame(extra)], ignore_index=True), dev, args.out, shapes)


def interleaved_profile(dev, passes: list[dict[float, float]]):
    """``dev`` with its ``gemv_bandwidth`` curve replaced by the best of the interleaved
    passes at each footprint, made non-increasing as ``hwprune calibrate`` does."""
    best = {f: max(p[f] for p in passes) for f in passes[0]}
    return dataclasses.replace(dev, gemv_bandwidth=tuple(non_increasing_from_above(best)))


def grid_measurements(shapes, passes: int, repeats: int, spread: float, between=lambda: None) -> dict:
    """``{(shape index, scheme, density): [(dense s, sparse s) per pass]}``: every grid
    point's dense and sparse kernels timed back to back in every pass, shapes in a
    different order each pass; ``between()`` runs before each pass and after the last."""
    points = [(si, scheme, d) for si in range(len(shapes)) for scheme in FORMATS[1:]
              for d in DENSITIES]
    times: dict = {p: [] for p in points}
    for p in range(passes):
        between()
        order = np.random.default_rng(100 + p).permutation(len(shapes))
        for si in order:
            name, m, k = shapes[si]
            for pt in (q for q in points if q[0] == si):
                _, scheme, d = pt
                print(f"\rpass {p + 1}/{passes} {name} {scheme} {d}      ", end="", file=sys.stderr)
                times[pt].append(measure_pair(scheme, m, k, d, repeats, spread,
                                              [1, m, k, int(d * 1e6)]))    # same matrices every pass
    between()
    return times


def grid_rows(dev, shapes, times: dict) -> list[dict]:
    """Every grid point's measured sparse/dense ratio (the median of the passes' ratios)
    beside the model's, ``pass_spread`` the largest pass ratio over the smallest, minus 1."""
    rows = []
    for (si, scheme, d), pairs in times.items():
        name, m, k = shapes[si]
        r = [sparse / dense for dense, sparse in pairs]
        rows.append({"shape": name, "rows": m, "cols": k, "scheme": scheme, "density": d,
                     "measured_ratio": float(np.median(r)),
                     "predicted_ratio": predicted_ratio(dev, m, k, scheme, d),
                     "dense_s": min(t[0] for t in pairs),
                     "sparse_s": min(t[1] for t in pairs),
                     "point": "grid", "pass_spread": max(r) / min(r) - 1})
    return rows


def bisect_densities(curve: pd.DataFrame, ratio_at, steps: int = BISECT_STEPS):
    """Measure ``steps`` more densities, each halving the grid interval in which the
    format's measured ratio first falls below 1: yields ``(density, ratio)``."""
    pts = curve.sort_values("density", ascending=False)[["density", "measured_ratio"]].to_numpy()
    if pts[0, 1] < 1:
        return
    for (d0, r0), (d1, r1) in zip(pts, pts[1:]):
        if r1 < 1:
            break
    else:
        return
    for _ in range(steps):
        mid = (d0 + d1) / 2
        r = ratio_at(mid)
        yield mid, r
        if r < 1:
            d1 = mid
        else:
            d0 = mid


def report(df: pd.DataFrame, dev, out: str | None, shapes=SHAPES) -> int:
    """Print the ratio-error distribution (grid points) and the break-even comparison
    (grid and bisection points); write ``out``."""
    df["error"] = df["predicted_ratio"] / df["measured_ratio"] - 1
    if "point" not in df:
        df["point"] = "grid"
    if out:
        df.to_csv(out, index=False)
    grid = df[df["point"] == "grid"]
    err = grid["error"]
    within = (err.abs() <= 0.15).mean()
    q = err.quantile([0.05, 0.25, 0.5, 0.75, 0.95])
    print(f"{len(grid)} grid points (shape, format, density); predicted / measured sparse-dense "
          f"ratio within +-15%: {within:.0%} (target >= 90%)")
    print("ratio error quantiles (predicted/measured - 1): "
          + ", ".join(f"p{int(k * 100)} {v:+.1%}" for k, v in q.items()))
    print(f"worst: {err.abs().max():.1%}; mean |error| {err.abs().mean():.1%}")
    if "pass_spread" in grid and grid["pass_spread"].notna().any():
        noise = grid["pass_spread"]
        print(f"measurement noise (largest / smallest pass ratio - 1): median {noise.median():.1%}, "
              f"p90 {noise.quantile(0.9):.1%}; passes within 15% of each other at "
              f"{(noise <= 0.15).mean():.0%} of points")
    bisect = df[df["point"] == "bisect"]["error"]
    if len(bisect):
        print(f"{len(bisect)} bisection points (not in the above): within +-15% "
              f"{(bisect.abs() <= 0.15).mean():.0%}, median {bisect.median():+.1%}")
    print(grid.groupby("scheme")["error"].describe(percentiles=[0.05, 0.25, 0.5, 0.75, 0.95])
          [["5%", "25%", "50%", "75%", "95%"]].round(3).to_string())
    table = []
    for name, m, k in shapes:
        for scheme in FORMATS[1:]:
            curve = df[(df["shape"] == name) & (df["scheme"] == scheme)]
            if curve.empty:
                continue
            meas = measured_crossing(curve)
            pred = crossing(lambda d, s=scheme, m=m, k=k: predicted_ratio(dev, m, k, s, d), 1.0)
            table.append({"shape": name, "scheme": scheme, "measured": meas, "predicted": pred,
                          "difference_pp": (pred - meas) * 100})
    if "dense_s" in grid and grid["dense_s"].notna().any():
        print("\ndense BLAS GEMV per shape, us (measured: each point's fastest pass; min and "
              "median over the shape's points):")
        lanes = dev.compute.simd_lanes
        for name, m, k in shapes:
            d = grid[grid["shape"] == name]["dense_s"] * 1e6
            if d.empty:
                continue
            est = cpu_latency(kernel_work(KernelShape(rows=m, cols=k, n=1), "dense", 1.0, lanes), dev)
            print(f"  {name:14s} {4 * m * k / 2 ** 20:7.1f} MiB  measured min {d.min():8.1f}  "
                  f"median {d.median():8.1f}  predicted {est.seconds * 1e6:8.1f} ({est.bound})  "
                  f"median error {est.seconds * 1e6 / d.median() - 1:+.1%}")
    be = pd.DataFrame(table)
    print("\nbreak-even density (below it the format beats the BLAS GEMV):")
    print(be.round(3).to_string(index=False))
    ok = (be["difference_pp"].abs() <= 5) | (be["measured"].isna() & be["predicted"].isna())
    print(f"within 5 percentage points: {ok.sum()} of {len(be)} (target >= 18 of 21)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
