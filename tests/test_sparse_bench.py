"""The kernel benchmark's bookkeeping (never its timings) and its CLI verb."""

import json

import numpy as np
import pandas as pd
import pytest

from hwprune.cli import main
from hwprune.sparse import bench


def test_breakeven_interpolates_in_log_density():
    rows = pd.DataFrame({"density": [0.01, 0.1, 1.0], "speedup": [4.0, 2.0, 0.5]})
    # speedup falls from 2 at 0.1 to 0.5 at 1.0: it crosses 1 two thirds of the way
    # along, on a log-density scale.
    assert bench.breakeven_density(rows) == pytest.approx(10 ** (-1 + 2 / 3))
    never = pd.DataFrame({"density": [0.01, 1.0], "speedup": [0.9, 0.1]})
    assert np.isnan(bench.breakeven_density(never))
    always = pd.DataFrame({"density": [0.01, 1.0], "speedup": [3.0, 1.2]})
    assert bench.breakeven_density(always) == 1.0


def test_masks_have_the_format_granularity():
    rng = np.random.default_rng(0)
    shape = bench.Shape("t", 64, 48, (3, 4, 4), (4, 4))
    kernel = bench._mask("kernel", shape, 0.3, rng).reshape(64, 3, 16)
    assert (kernel.all(axis=2) | ~kernel.any(axis=2)).all()       # whole kernels
    rows = bench._mask("rows", shape, 0.3, rng)
    assert (rows.all(axis=1) | ~rows.any(axis=1)).all()           # whole rows
    assert bench._mask("fine", shape, 1.0, rng).all()


def test_run_reports_every_storage_and_the_baseline():
    shape = bench.Shape("tiny", 32, 40)
    df, bandwidth = bench.run([shape], (1.0, 0.2), ("csr", "group-csr", "scipy-csr",
                                                   "numpy-1t"), repeats=1)
    assert set(df["storage"]) == {"csr", "group-csr", "scipy-csr", "numpy-1t"}
    assert len(df) == 8 and bandwidth > 0
    base = df[df["storage"] == "numpy-1t"]
    assert (base["speedup"] == 1.0).all()
    assert (df["median_s"] > 0).all()


def test_cli_bench_kernels_json(capsys):
    code = main(["bench", "kernels", "--quick", "--shapes", "lenet300-fc1", "--storage", "csr",
                 "--format", "json"])
    out, _ = capsys.readouterr()
    rows = json.loads(out)
    assert code == 0
    assert {r["storage"] for r in rows} == {"csr", "numpy-1t"}
    assert {r["density"] for r in rows} == set(bench.QUICK_DENSITIES)


@pytest.mark.parametrize("argv, needle", [
    (["bench", "kernels", "--storage", "coo"], "unknown storage 'coo'"),
    (["bench", "kernels", "--shapes", "resnet-fc"], "unknown shape 'resnet-fc'"),
    (["bench"], "required: WHAT"),
])
def test_cli_bench_bad_input(capsys, argv, needle):
    code = main(argv)
    _, err = capsys.readouterr()
    assert code == 2 and err.startswith("hwprune: error: ") and needle in err
