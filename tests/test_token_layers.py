"""A linear layer over tokens (``nn.Linear`` on ``(T, D)``) is priced as what it runs:
one product over every token, the same as a 1x1 convolution over ``T`` positions; a
matmul between two activations as a linear layer whose weights are its right operand."""

import pytest

import hwprune
from hwprune import api
from hwprune.errors import InputError
from hwprune.evaluate import LayerPlan, Plan, evaluate
from hwprune.latency.work import KernelShape
from hwprune.studies.recommend import recommend_choice
from hwprune.workload.builder import NetworkBuilder

T, D, H = 49, 64, 96


def _tokens():
    b = NetworkBuilder("tokens", (T, D))
    x = b.token_fc("up", b.input, H)
    b.token_fc("down", x, D)
    return b.build()


def _as_conv():
    b = NetworkBuilder("conv", (D, T, 1))
    x = b.conv("up", b.input, H, 1)
    b.conv("down", x, D, 1)
    return b.build()


def test_token_layers_are_weighted_with_their_macs():
    net = _tokens()
    assert [lay.name for lay in net.weighted_layers] == ["up", "down"]
    assert net["up"].macs == T * D * H and net["up"].weight_shape == (H, D)
    shape = KernelShape.of(net["up"], batch=2)
    assert (shape.rows, shape.cols, shape.n, shape.is_fc) == (H, D, 2 * T, False)


@pytest.mark.parametrize("dev", ["cortex-m4", "core-i7", "titan-x", "eyeriss"])
def test_a_token_layer_costs_what_a_1x1_convolution_over_its_tokens_costs(dev):
    d = hwprune.device(dev)
    for scheme, density in (("dense", 1.0), ("fine", 0.3), ("simd", 0.3)):
        plan_t = Plan.uniform(_tokens(), scheme, density)
        plan_c = Plan.uniform(_as_conv(), scheme, density)
        tok, conv = evaluate(_tokens(), d, plan_t), evaluate(_as_conv(), d, plan_c)
        for a, b in zip(tok, conv):
            assert a.cost.energy == pytest.approx(b.cost.energy, rel=1e-9), (dev, scheme, a.layer)
            assert a.cost.latency_s == pytest.approx(b.cost.latency_s, rel=1e-9), (dev, scheme, a.layer)
            assert a.cost.bytes == b.cost.bytes


def test_removing_a_token_layers_units_is_refused_and_never_recommended():
    net = _tokens()
    with pytest.raises(InputError, match="linear layer over tokens"):
        evaluate(net, hwprune.device("core-i7"), Plan({"up": LayerPlan("node", 0.5)}))
    for dev in ("cortex-m4", "titan-x"):
        choice = recommend_choice(net, hwprune.device(dev), 0.1)
        assert not any(choice.plan[n].scheme.removes_units for n in ("up", "down"))


def _attention():
    b = NetworkBuilder("attn", (T, D))
    q = b.token_fc("q", b.input, D)
    k = b.token_fc("k", b.input, D)
    kt = b.transpose("kt", k, 0, 1)
    b.matmul("scores", q, kt)
    return b.build()


@pytest.mark.parametrize("dev", ["cortex-m4", "core-i7", "titan-x", "eyeriss"])
def test_a_matmul_is_priced_as_a_linear_layer_over_its_rows(dev):
    """``(M, K) @ (K, N)`` runs as a linear layer of ``K -> N`` over ``M`` tokens whose
    weights are the right operand: the same energy and latency, a row in both tables."""
    net = _attention()
    b = NetworkBuilder("same", (T, D))
    b.token_fc("scores", b.input, T, bias=False)
    twin = b.build()
    for table in (api.energy, api.latency):
        got = table(net, dev).set_index("layer")
        want = table(twin, dev).set_index("layer")
        assert list(got.index) == ["q", "k", "kt", "scores"]
        assert list(got["runs_as"]) == ["kernel", "kernel", "copy", "kernel"]
        col = "energy_pj" if table is api.energy else "seconds"
        assert got.loc["scores", col] == pytest.approx(want.loc["scores", col], rel=1e-9)
    assert api.energy(net, dev)["macs"].sum() == net.macs


def test_heads_are_independent_products():
    b = NetworkBuilder("heads", (4, T, 16))
    b.matmul("scores", b.input, b.transpose("t", b.input, 1, 2))
    net = b.build()
    assert net["scores"].macs == 4 * T * 16 * T
    row = api.energy(net, "core-i7").set_index("layer").loc["scores"]
    assert row["runs_as"] == "kernel" and row["macs"] == 4 * T * 16 * T
