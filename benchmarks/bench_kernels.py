"""Kernel benchmark: every hwprune storage format beside scipy.sparse CSR and numpy
dense (BLAS with one thread and with all threads), across densities, with the
machine's single-thread streaming bandwidth and each format's break-even density,
all in one run. Then checks the targets of the kernels issue and prints the ratios.

Then the structured-sparsity kernels (``hwprune.sparse.nm``, ``hwprune.sparse.block``)
on AlexNet fc6/fc7's shapes, each beside its peer on the same mask: 2:4 against
hwprune's CSR at 50%, 2-D blocks (4x4, 16x16) against scipy's ``bsr_matrix`` at 10%
(issue 23's targets: 1.5x each).

Run:  python benchmarks/bench_kernels.py [--quick] [--out results/kernels.csv]
Same measurements as `hwprune bench kernels`, plus the structured rows.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd
import scipy.sparse as sp

from hwprune.report.output import render
from hwprune.sparse import bench
from hwprune.sparse.block import BlockMatrix, block_mask
from hwprune.sparse.formats import CSRMatrix
from hwprune.sparse.nm import NMMatrix, nm_mask


def structured(shapes, repeats: int = 15, seed: int = 0) -> pd.DataFrame:
    """Median matvec seconds of the N:M and block kernels and their peers, one row per
    (shape, storage), the peer on the same mask."""
    rng = np.random.default_rng(seed)
    rows = []
    for shape in shapes:
        w = rng.standard_normal((shape.rows, shape.cols)).astype(np.float32)
        x = rng.standard_normal(shape.cols).astype(np.float32)
        mask = nm_mask(np.abs(w), 2, 4)
        runs = {("2:4", "nm"): NMMatrix.from_dense(w, mask, 2, 4).matvec,
                ("2:4", "csr"): CSRMatrix.from_dense(w, mask).matvec}
        for r, c in ((4, 4), (16, 16)):
            mask = block_mask(np.abs(w), r, c, 0.1)
            runs[(f"{r}x{c} at 10%", "block")] = BlockMatrix.from_dense(w, mask, r, c).matvec
            peer = sp.bsr_matrix(np.where(mask, w, np.float32(0)), blocksize=(r, c))
            runs[(f"{r}x{c} at 10%", "scipy-bsr")] = peer.__matmul__
        for (pattern, storage), call in runs.items():
            rows.append({"shape": shape.name, "pattern": pattern, "storage": storage,
                         "median_s": bench._median_time(lambda call=call: call(x), repeats)})
    return pd.DataFrame(rows)


def structured_targets(df: pd.DataFrame) -> list[str]:
    t = df.set_index(["shape", "pattern", "storage"])["median_s"]
    lines = []
    for shape in df["shape"].unique():
        ratio = t[(shape, "2:4", "csr")] / t[(shape, "2:4", "nm")]
        lines.append(f"{shape}: 2:4 vs csr at 50%: {ratio:.2f}x  -> "
                     f"{'met' if ratio >= 1.5 else 'MISSED'} (target >= 1.5x)")
        for pattern in ("4x4 at 10%", "16x16 at 10%"):
            ratio = t[(shape, pattern, "scipy-bsr")] / t[(shape, pattern, "block")]
            lines.append(f"{shape}: block {pattern} vs scipy bsr: {ratio:.2f}x  -> "
                         f"{'met' if ratio >= 1.5 else 'MISSED'} (target >= 1.5x)")
    return lines


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
    big = bench.shapes_by_name(["alexnet-fc7"] if args.quick else ["alexnet-fc6", "alexnet-fc7"])
    structured_df = structured(big)
    print("\nstructured sparsity, median seconds per matvec:")
    print(render(structured_df, "table"))
    print("\n".join(structured_targets(structured_df)))
    if args.out:
        df.to_csv(args.out, index=False)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
