"""The sweep engine on this machine: ``hwprune tradeoff digits-mlp`` and ``hwprune report``
in this process (``--workers 0``) against a local Dask cluster (``--workers 2``), side by
side in one run, and the engine's scheduling overhead per point on the loopback.

Each command runs in a fresh output directory (nothing taken from a store), alternating
serial and parallel ``--repeats`` times; the table gives each run's wall time, the
medians and the speedup (serial median / parallel median). The overhead is measured on
``--points`` tasks that do nothing but return one row: (cluster wall - in-process wall) /
points, the cluster already started.

Run:  python benchmarks/bench_sweep.py [--repeats 3] [--report-repeats 1] [--points 400]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd


def _one_row(i: int) -> pd.DataFrame:
    return pd.DataFrame({"i": [i]})


def timed(command: list[str], workers: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run(["hwprune", *command, "--out", str(Path(tmp) / "out"), "--workers",
                        str(workers)], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        return time.perf_counter() - start


def overhead(points: int) -> tuple[float, float, float]:
    """(in-process seconds, cluster seconds, overhead per point in ms)."""
    from hwprune.studies import engine

    tasks = [engine.Task(f"noop/{i}", _one_row, (i,)) for i in range(points)]
    start = time.perf_counter()
    engine.run(tasks)
    local = time.perf_counter() - start
    cluster = engine._Dask(2, None)
    try:
        cluster.run(tasks[:4], {}, lambda *a: None)          # warm the workers up
        start = time.perf_counter()
        cluster.run(tasks, {}, lambda *a: None)
        remote = time.perf_counter() - start
    finally:
        cluster.close()
    return local, remote, (remote - local) / points * 1e3


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of tradeoff per setting")
    parser.add_argument("--report-repeats", type=int, default=1, help="runs of report per setting")
    parser.add_argument("--points", type=int, default=400, help="no-op points for the overhead")
    args = parser.parse_args(argv)
    rows = []
    for name, command, repeats in (("tradeoff digits-mlp", ["tradeoff", "digits-mlp"], args.repeats),
                                   ("report", ["report"], args.report_repeats)):
        runs = {0: [], 2: []}
        for _ in range(repeats):
            for workers in (0, 2):
                runs[workers].append(timed(command, workers))
                print(f"{name} --workers {workers}: {runs[workers][-1]:.1f} s", file=sys.stderr)
        serial, parallel = statistics.median(runs[0]), statistics.median(runs[2])
        rows.append({"command": f"hwprune {name}", "serial_runs_s": ", ".join(f"{t:.1f}" for t in runs[0]),
                     "workers2_runs_s": ", ".join(f"{t:.1f}" for t in runs[2]),
                     "serial_median_s": round(serial, 1), "workers2_median_s": round(parallel, 1),
                     "speedup": round(serial / parallel, 2)})
    print(pd.DataFrame(rows).to_string(index=False))
    local, remote, per_point = overhead(args.points)
    print(f"\nscheduling overhead on the loopback ({args.points} no-op points, 2 workers, warm): "
          f"in-process {local:.2f} s, cluster {remote:.2f} s, {per_point:.2f} ms per point")
    print("target: speedup >= 1.6 on two workers (issue 24)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
