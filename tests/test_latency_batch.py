"""``--batch`` for latency and break-even: the batch reaches every latency model."""

import io

import pandas as pd
import pytest

import hwprune
from hwprune import api
from hwprune.cli import main
from hwprune.evaluate import Plan, evaluate
from hwprune.latency import kernel_work, layer_latency
from hwprune.latency.work import KernelShape


def test_a_batch_multiplies_the_columns_of_the_product():
    net = hwprune.network("lenet-5")
    fc, conv = KernelShape.of(net["ip1"], 8), KernelShape.of(net["conv2"], 8)
    assert (fc.n, fc.batch, fc.is_matvec, fc.is_fc) == (8, 8, False, True)
    assert conv.n == 8 * 8 * 8 and not conv.is_fc          # conv2 outputs 50 x 8 x 8
    work = kernel_work(fc, "fine", 0.1)
    assert work.im2col_elements == 0                         # an fc input needs no im2col
    assert work.macs == work.stored * 8
    # vector groups of a fully connected layer are single weights at any batch
    assert kernel_work(fc, "vector", 0.1).scheme.name == "fine"


@pytest.mark.parametrize("dev_id", ["cortex-m4", "core-i7", "titan-x", "eyeriss"])
def test_a_batch_costs_more_than_one_input_and_at_most_b_times(dev_id):
    dev = hwprune.device(dev_id)
    for name in ("conv2", "ip1"):
        layer = hwprune.network("lenet-5")[name]
        one = layer_latency(layer, dev, "dense").cycles
        many = layer_latency(layer, dev, "dense", batch=16).cycles
        assert one < many <= 16 * one * (1 + 1e-9), (dev_id, name, one, many)


def test_evaluate_prices_the_whole_batch_at_once():
    net, dev = hwprune.network("lenet-300-100"), hwprune.device("titan-x")
    ev = evaluate(net, dev, Plan.uniform(net, "dense", 1.0), batch=32)
    layer = ev.layers[0]
    assert layer.cost.latency_s == pytest.approx(
        layer_latency(net[layer.layer], dev, "dense", batch=32).seconds)


def test_cli_latency_and_breakeven_take_batch(capsys):
    assert main(["latency", "lenet-5", "--device", "core-i7", "--batch", "8",
                 "--format", "csv"]) == 0
    df = pd.read_csv(io.StringIO(capsys.readouterr().out))
    expected = api.latency("lenet-5", "core-i7", batch=8)
    assert df["cycles"].to_numpy() == pytest.approx(expected["cycles"].to_numpy(), rel=1e-4)
    assert main(["breakeven", "lenet-300-100", "--device", "titan-x", "--batch", "64"]) == 0
    assert "batch 64" in capsys.readouterr().out


@pytest.mark.parametrize("verb", ["latency", "breakeven"])
@pytest.mark.parametrize("bad", ["0", "65537", "2.5", "many"])
def test_a_batch_out_of_range_is_one_line(capsys, verb, bad):
    assert main([verb, "lenet-5", "--device", "cortex-m4", "--batch", bad]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hwprune: error:") and "1 to 65536" in err[0]


def test_api_rejects_a_bad_batch():
    with pytest.raises(hwprune.errors.InputError, match="1 to 65536"):
        api.breakeven("lenet-5", "cortex-m4", batch=0)
