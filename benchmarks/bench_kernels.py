"""Kernel benchmark: every hwprune storage format beside scipy.sparse CSR and numpy
dense (BLAS with one thread and with all threads), across densities, with the
machine's single-thread streaming bandwidth and each format's break-even density,
all in one run. Then checks the targets of the kernels issue and prints the ratios.

Run:  python benchmarks/bench_kernels.py [--quick] [--out results/kernels.csv]
Same measurements as `hwprune bench kernels`.
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from hwprune.report.output import render
from hwprune.sparse import bench


def targets(df: pd.DataFrame, bandwidth: float) -> list[str]:
    lines = []
    mv = df[df["op"] == "matvec"].set_index(["shape", "density", "storage"])["median_s"]
    for shape in df.loc[df["op"] == "matvec", "shape"].unique():
        ratios = []
        for density in sorted(df["density"].unique(), reverse=True):
            if density < 0.05 or (shape, density, "csr") not in mv:
                continue
            ratios.append((density, mv[(shape, density, "scipy-csr")] / mv[(shape, density, "csr")]))
        worst = min(r for _, r in ratios)
        lines.append(f"{shape}: csr vs scipy-csr speedup at densities >= 0.05: "
                     + ", ".join(f"{d:g}: {r:.2f}x" for d, r in ratios)
                     + f"  -> {'met' if worst >= 1 else 'MISSED'} (target >= 1x)")
        if (shape, 0.1, "group-csr") in mv:
            ratio = mv[(shape, 0.1, "scipy-csr")] / mv[(shape, 0.1, "group-csr")]
            lines.append(f"{shape}: group-csr (g=8) vs scipy-csr at 10%: {ratio:.2f}x  -> "
                         f"{'met' if ratio >= 1.5 else 'MISSED'} (target >= 1.5x)")
    gb = df[(df["storage"] == "group-csr") & (df["op"] == "matvec") & (df["density"] < 1)]
    if len(gb):
        best = gb.groupby("shape")["gb_s"].median()
        for shape, value in best.items():
            lines.append(f"{shape}: group-csr matvec median {value:.1f} GB/s = "
                         f"{value / bandwidth:.0%} of streaming {bandwidth:.1f} GB/s  -> "
                         f"{'met' if value >= 0.6 * bandwidth else 'MISSED'} (target >= 60%)")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", help="write all rows as CSV")
    args = parser.parse_args(argv)
    shapes = bench.shapes_by_name(bench.QUICK_SHAPES) if args.quick else list(bench.SHAPES)
    densities = bench.QUICK_DENSITIES if args.quick else bench.DENSITIES
    df, bandwidth = bench.run(shapes, densities, progress=bench.stderr_progress)
    print(render(df, "table"))
    print("break-even density (highest density faster than one-thread BLAS dense):")
    print(render(bench.summary(df), "table"))
    print(f"single-thread streaming read bandwidth: {bandwidth:.1f} GB/s\n")
    print("\n".join(targets(df, bandwidth)))
    if args.out:
        df.to_csv(args.out, index=False)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
