"""Studies on a Dask cluster started the way docs/scaling.md says (``dask scheduler``
and ``dask worker`` processes, here on the loopback), and granularity over several
devices as one study: the same rows as in this process; the user's torch model built
again on the workers from its ``MODULE:FACTORY`` specs; a clear error where a worker
cannot import it."""

import json
import subprocess
import sys
import time

import pandas as pd
import pytest

import hwprune
from hwprune import api
from hwprune.cli import main
from hwprune.errors import InputError
from hwprune.studies import tradeoff as T


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """A ``dask scheduler`` and one ``dask worker --nthreads 1`` started in a directory of
    their own (so a module importable only from the tests' directory is not importable
    there); the scheduler's address and the worker's process (the last test kills it)."""
    where = tmp_path_factory.mktemp("cluster")
    file = where / "scheduler.json"
    procs = [subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--scheduler-file",
                               str(file), "--port", "0", "--no-dashboard"], cwd=where,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(file.read_text())["address"]
        procs.append(subprocess.Popen([sys.executable, "-m", "dask", "worker", address,
                                       "--nthreads", "1", "--no-dashboard", "--no-nanny"],
                                      cwd=where, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(1, timeout=60)
        yield address, procs[1]
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def test_a_tradeoff_on_dask_scheduler_and_worker_processes(scheduler, tmp_path, monkeypatch, capsys):
    address, _ = scheduler
    monkeypatch.setattr(T, "DENSITIES", (0.5,))
    monkeypatch.setattr(T, "TOLERANCES", ())
    monkeypatch.setattr(T, "BUDGETS", (0.02,))
    for out, where in (("serial", ["--workers", "0"]), ("remote", ["--scheduler", address])):
        assert main(["tradeoff", "digits-mlp", "--devices", "cortex-m4", "--out",
                     str(tmp_path / out), *where]) == 0, capsys.readouterr().err
    serial, remote = (pd.read_csv(tmp_path / d / "tradeoff.csv") for d in ("serial", "remote"))
    pd.testing.assert_frame_equal(serial, remote)
    assert set(serial["policy"]) >= {"dense", "magnitude", "energy-aware"}


def test_granularity_over_devices_is_one_study_and_equals_each_device_alone(scheduler):
    devices = ["cortex-m4", "core-i7"]
    here = api.granularity_study("digits-mlp", devices, epochs=1)
    remote = api.granularity_study("digits-mlp", devices, epochs=1, scheduler=scheduler[0])
    pd.testing.assert_frame_equal(here.layers, remote.layers)
    assert list(dict.fromkeys(here.layers["device"])) == devices and not here.failures
    for dev in devices:                 # the shared searches give each device's own choice
        alone = api.granularity("digits-mlp", dev, epochs=1).layers
        mine = here.layers[here.layers["device"] == dev][list(alone.columns)]
        pd.testing.assert_frame_equal(mine.reset_index(drop=True), alone)


FACTORIES = '''
import torch
from torch import nn

def make():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3)), \\
        torch.zeros(1, 1, 4, 4)

def loaders():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(48, 1, 4, 4, generator=g), torch.randint(0, 3, (48,), generator=g)
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 48, 16)]
    return batches, batches
'''


def test_a_torch_model_is_built_again_on_the_workers(scheduler, tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    address, _ = scheduler
    (tmp_path / "userfactories.py").write_text(FACTORIES)
    monkeypatch.chdir(tmp_path)
    common = ["granularity", "--device", "cortex-m4", "--format", "csv"]
    by_path = ["--model", "userfactories.py:make", "--data", "userfactories.py:loaders"]
    assert main([*common, *by_path]) == 0
    serial = capsys.readouterr().out
    assert main([*common, *by_path, "--scheduler", address]) == 0
    assert capsys.readouterr().out == serial
    # A module name is looked up on the worker, which started elsewhere: a clear refusal.
    by_name = ["--model", "userfactories:make", "--data", "userfactories:loaders"]
    assert main([*common, *by_name, "--scheduler", address]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hwprune: error: the Dask worker at tcp://") and \
        "no module named 'userfactories'" in err and err.count("\n") == 1
    # A module handed over in memory cannot travel at all.
    user = api.user_model("userfactories.py:make")
    loaders = api.torch_data_args(api.user_data("userfactories.py:loaders"))["loaders"]
    with pytest.raises(InputError, match="handed over in memory"):
        api.granularity_study(user.module, ["cortex-m4"], example_input=user.example_input,
                              loaders=loaders, workers=1)


def test_a_scheduler_without_workers_or_unreachable_is_a_clear_error(monkeypatch):
    from distributed import LocalCluster

    from hwprune.studies import engine

    monkeypatch.setattr(engine, "WORKER_WAIT_S", 1)
    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as cluster:
        with pytest.raises(InputError, match="has no worker"):
            hwprune.api.granularity_study("digits-mlp", ["cortex-m4"],
                                          scheduler=cluster.scheduler_address)
    with pytest.raises(InputError, match="cannot reach the Dask scheduler"):
        hwprune.api.tradeoff("digits-mlp", ["cortex-m4"], scheduler="tcp://127.0.0.1:9")


def test_a_cluster_that_loses_every_worker_stops_with_a_clear_error(scheduler, monkeypatch):
    """Kills the module's worker: keep this test last."""
    import threading

    from hwprune.errors import HwpruneError
    from hwprune.studies import engine

    address, worker = scheduler
    monkeypatch.setattr(engine, "WORKER_WAIT_S", 1)
    monkeypatch.setattr(engine, "POLL_S", 0.2)
    naps = [engine.Task(f"nap/{i}", time.sleep, (0.5,)) for i in range(30)]
    threading.Timer(1.5, worker.kill).start()
    with pytest.raises(HwpruneError, match="lost all its workers"):
        engine.run(naps, scheduler=address)
