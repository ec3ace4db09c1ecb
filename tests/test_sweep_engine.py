"""The sweep engine (issue 24): tasks with dependencies, a Parquet store that resumes,
failures recorded per point, and the same rows serial and on a 2-worker LocalCluster
(a running scheduler: tests/test_dask_cluster.py)."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

import hwprune
from hwprune.errors import InputError
from hwprune.studies import engine
from hwprune.studies import tradeoff as T
from hwprune.studies.engine import Runner, Store, Task


def _square(x: int) -> pd.DataFrame:
    if x == 3:
        raise ValueError("three is not allowed")
    return pd.DataFrame({"x": [x], "y": [x * x]})


def _total(results) -> pd.DataFrame:
    return pd.DataFrame({"total": [sum(int(r["points"]["y"].sum()) for r in results.values())]})


def _tasks(n=5):
    return [Task(f"sq/{i}", _square, (i,)) for i in range(n)]


def test_a_failing_point_is_recorded_and_the_rest_finish(tmp_path):
    store = Store(tmp_path / "store", {"verb": "test"})
    out = engine.run(_tasks(), store)
    assert list(out.table()["x"]) == [0, 1, 2, 4]
    assert set(out.failures) == {"sq/3"} and "three is not allowed" in out.failures["sq/3"]
    assert "1 failed: sq/3: ValueError: three is not allowed" in out.summary()
    assert json.loads((tmp_path / "store" / "failures.json").read_text()) == out.failures
    again = engine.run(_tasks(), Store(tmp_path / "store", {"verb": "test"}))
    assert again.skipped == 4 and again.ran == 1 and list(again.table()["x"]) == [0, 1, 2, 4]


def test_a_task_gets_the_results_it_needs_and_fails_when_they_failed():
    tasks = _tasks(3) + [Task("total", _total, (), needs=("sq/0", "sq/1", "sq/2"))]
    assert engine.run(tasks).table()["total"].tolist()[-1] == 0 + 1 + 4
    tasks = _tasks(4) + [Task("total", _total, (), needs=("sq/2", "sq/3"))]
    out = engine.run(tasks)
    assert "needs 'sq/3', which failed" in out.failures["total"]
    with pytest.raises(InputError, match="share the key"):
        engine.run(_tasks(2) + _tasks(1))


def test_another_study_definition_is_refused_unless_forced(tmp_path):
    Store(tmp_path / "s", {"verb": "tradeoff", "seed": 0})
    with pytest.raises(InputError, match="another study definition.*seed: 0 there, 1 now"):
        Store(tmp_path / "s", {"verb": "tradeoff", "seed": 1})
    engine.run(_tasks(2), Store(tmp_path / "s", {"verb": "tradeoff", "seed": 0}))
    forced = Store(tmp_path / "s", {"verb": "tradeoff", "seed": 1}, force=True)
    assert not forced.has(_tasks(1)[0])


@pytest.fixture
def tiny(monkeypatch):
    """A small trade-off study: one density, one tolerance, no energy-aware points."""
    monkeypatch.setattr(T, "DENSITIES", (0.5,))
    monkeypatch.setattr(T, "TOLERANCES", (0.02,))
    monkeypatch.setattr(T, "BUDGETS", ())
    return [hwprune.device("cortex-m4")]


def test_two_local_workers_give_the_serial_rows(tiny):
    serial = T.study(["digits-mlp"], tiny, epochs=1)
    parallel = T.study(["digits-mlp"], tiny, epochs=1, runner=Runner(workers=2))
    pd.testing.assert_frame_equal(serial.points, parallel.points)
    pd.testing.assert_frame_equal(serial.granularity, parallel.granularity)
    assert "scalpel" in set(serial.points["policy"]) and not parallel.failures


SCRIPT = textwrap.dedent("""
    import sys
    from hwprune import api
    from hwprune.studies import tradeoff as T
    T.DENSITIES, T.TOLERANCES, T.BUDGETS = (0.5, 0.25), (), (0.02,)
    api.tradeoff("digits-mlp", ["cortex-m4"], store=sys.argv[1], epochs=2)
""")


def test_a_killed_study_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    monkeypatch.setattr(T, "DENSITIES", (0.5, 0.25))
    monkeypatch.setattr(T, "TOLERANCES", ())
    monkeypatch.setattr(T, "BUDGETS", (0.02,))
    store = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(store)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list((store / "points").glob("*.parquet"))) >= 3:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    done_before = len(list((store / "points").glob("*.parquet")))
    total = len(T.sweep_tasks("digits-mlp", [hwprune.device("cortex-m4")]))
    assert 0 < done_before < total, "the kill came too late to test a resume"
    resumed = hwprune.api.tradeoff("digits-mlp", ["cortex-m4"], store=store, epochs=2)
    assert f"{total - done_before} point(s) run, {done_before} taken from the store" in resumed.summary
    whole = hwprune.api.tradeoff("digits-mlp", ["cortex-m4"], store=tmp_path / "whole", epochs=2)
    pd.testing.assert_frame_equal(resumed.points, whole.points)
    again = hwprune.api.tradeoff("digits-mlp", ["cortex-m4"], store=store, epochs=2)
    assert again.summary.startswith(f"0 point(s) run, {total} taken from the store")


def test_the_cli_resumes_and_keeps_quiet_off_a_terminal(tmp_path, capsys, monkeypatch, tiny):
    from hwprune.cli import main

    out = tmp_path / "t"
    assert main(["tradeoff", "digits-mlp", "--devices", "cortex-m4", "--out", str(out),
                 "--workers", "0"]) == 0
    err = capsys.readouterr().err
    assert "point(s) run, 0 taken from the store" in err and "[" not in err.split("wrote")[0]
    assert (out / "store" / "study.json").exists() and (out / "tradeoff.csv").exists()
    assert main(["tradeoff", "digits-mlp", "--devices", "cortex-m4", "--out", str(out),
                 "--workers", "0"]) == 0
    assert "0 point(s) run" in capsys.readouterr().err
    assert main(["tradeoff", "digits-mlp", "--devices", "cortex-m4", "--out", str(out),
                 "--seed", "1", "--workers", "0"]) == 2
    assert "another study definition" in capsys.readouterr().err
    assert main(["tradeoff", "digits-mlp", "--devices", "cortex-m4", "--out", str(out),
                 "--workers", "2", "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert "not both" in capsys.readouterr().err


def test_an_interrupted_output_directory_is_resumed_by_its_own_verb_only(tmp_path, capsys, tiny):
    """An interrupted run leaves only OUT/store (no manifest yet): the same verb resumes
    into it, another verb refuses it."""
    from hwprune.cli import main

    out = tmp_path / "t"
    hwprune.api.tradeoff("digits-mlp", ["cortex-m4"], store=out / "store")
    assert not (out / ".hwprune").exists() and (out / "store" / "study.json").exists()
    assert main(["report", "--devices", "cortex-m4", "--out", str(out), "--workers", "0"]) == 2
    assert "unfinished study of 'hwprune tradeoff'" in capsys.readouterr().err
    assert main(["tradeoff", "digits-mlp", "--devices", "cortex-m4", "--out", str(out),
                 "--workers", "0"]) == 0
    total = len(T.sweep_tasks("digits-mlp", tiny))
    assert f"0 point(s) run, {total} taken from the store" in capsys.readouterr().err
    assert (out / ".hwprune").exists() and (out / "tradeoff.csv").exists()


def test_sensitivity_on_two_workers_equals_serial():
    serial = hwprune.api.sensitivity("digits-mlp", densities=[0.5, 0.1], beside=("2:4",))
    parallel = hwprune.api.sensitivity("digits-mlp", densities=[0.5, 0.1], beside=("2:4",),
                                       workers=2)
    pd.testing.assert_frame_equal(serial, parallel)
    assert list(serial["scheme"].unique()) == ["fine", "2:4"]
