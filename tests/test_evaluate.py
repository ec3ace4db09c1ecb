"""The scheme registry, plans, evaluate(), and tables that cannot contradict themselves."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hwprune
from hwprune.errors import InputError, UnknownNameError
from hwprune.evaluate import Cost, LayerPlan, Plan, evaluate, shapes_as_run
from hwprune.latency.network import layer_latency
from hwprune.schemes import DENSE, FINE, NODE, SIMD, Group, Kernel, Scheme, register, scheme, unregister
from hwprune.studies import scalpel as S
from hwprune.studies import tradeoff
from hwprune.studies.recommend import recommend, recommend_choice
from hwprune.workload.coupling import unit_couplings

DEVICES = ("cortex-m4", "core-i7", "titan-x", "eyeriss")


def test_names_and_aliases_resolve_to_one_scheme():
    assert scheme("csr") is FINE and scheme("group-csr") is SIMD and scheme("compact") is NODE
    assert hwprune.api.check_scheme("compact") == "node"
    with pytest.raises(UnknownNameError, match="accepted: dense, fine, simd"):
        scheme("blocks")
    with pytest.raises(InputError, match="prunes nothing"):
        hwprune.api.check_scheme("dense", pruning_only=True)


def test_group_width_comes_from_the_device_or_the_kernel_shape():
    assert SIMD.group_width((3, 3), 8) == 8
    assert scheme("vector").group_width((3, 5), 8) == 5
    assert scheme("kernel").group_width((3, 5), 8) == 15
    assert FINE.group_width((3, 3), 8) == 1
    assert scheme("vector").on(is_matvec=True) is FINE and scheme("vector").on(False).name == "vector"


def test_costs_add_up():
    ev = evaluate(hwprune.network("lenet-5"), hwprune.device("core-i7"),
                  Plan.uniform(hwprune.network("lenet-5"), "fine", 0.3))
    total = Cost.sum(le.cost for le in ev) + Cost.sum(fe.cost for fe in ev.fixed)
    assert ev.total == total and ev.pruned_layers_total == Cost.sum(le.cost for le in ev)
    assert [fe.layer for fe in ev.fixed] == ["pool1", "pool2"]        # lenet-5 (Caffe) has no flatten
    assert (ev["conv1"].cost + ev["conv2"].cost).energy == pytest.approx(
        ev["conv1"].cost.energy + ev["conv2"].cost.energy)
    frame = ev.to_frame()
    assert frame["energy"].sum() == pytest.approx(ev.total.energy)
    assert frame["latency_s"].sum() == pytest.approx(ev.total.latency_s)
    assert frame["bytes"].sum() == pytest.approx(ev.total.bytes)


def test_dense_evaluation_matches_the_energy_and_latency_verbs():
    net, dev = hwprune.network("lenet-300-100"), hwprune.device("cortex-m4")
    ev = evaluate(net, dev)
    energy = hwprune.energy(net, dev).set_index("layer")["energy_pj"]
    for le in ev:
        assert le.cost.energy == pytest.approx(energy[le.layer])
        assert le.cost.latency_s == pytest.approx(layer_latency(net[le.layer], dev).seconds)
        assert le.weights_kept == le.weights


@pytest.mark.parametrize("dev_id", ["cortex-m4", "core-i7", "titan-x", "eyeriss"])
def test_a_dense_plan_costs_what_the_tables_total(dev_id):
    """Every layer is in the evaluation (conv/fc, and the fixed layers: passes, matmuls),
    so a dense plan's total is the energy and latency tables' total."""
    for name in ("googlenet", "resnet18"):
        net, dev = hwprune.network(name), hwprune.device(dev_id)
        ev = evaluate(net, dev)
        assert list(ev.to_frame()["layer"]) == [lay.name for lay in net.layers]
        assert ev.total.energy == pytest.approx(hwprune.energy(net, dev)["energy_pj"].sum(), rel=1e-12)
        latency = hwprune.api.latency(net, dev)["seconds"].sum()
        assert ev.total.latency_s == pytest.approx(latency, rel=1e-12)


def test_node_pruning_shrinks_the_passes_after_it():
    """A node-pruned conv's folded batch norm stays free; the pooling and add after a
    pruned branch read and write less; the network's total falls by more than the conv
    layers' own saving."""
    net, dev = hwprune.network("resnet18"), hwprune.device("titan-x")
    stage = ("conv1", "layer1.0.conv2", "layer1.1.conv2")         # coupled by the residual adds
    assert stage in unit_couplings(net).groups
    plan = Plan({m: LayerPlan(NODE, 0.5) for m in stage})
    dense, pruned = evaluate(net, dev), evaluate(net, dev, plan)
    fixed = {fe.layer: fe for fe in pruned.fixed}
    dense_fixed = {fe.layer: fe for fe in dense.fixed}
    assert fixed["maxpool"].outputs_kept == pytest.approx(0.5)
    assert fixed["maxpool"].cost.energy == pytest.approx(dense_fixed["maxpool"].cost.energy / 2, rel=1e-3)
    assert fixed["layer1.0"].cost.latency_s < dense_fixed["layer1.0"].cost.latency_s
    assert fixed["bn1"].cost.energy == 0.0
    saved_fixed = (Cost.sum(fe.cost for fe in dense.fixed).energy
                   - Cost.sum(fe.cost for fe in pruned.fixed).energy)
    assert saved_fixed > 0
    assert dense.total.energy - pruned.total.energy == pytest.approx(
        dense.pruned_layers_total.energy - pruned.pruned_layers_total.energy + saved_fixed)


def test_a_restricted_evaluation_has_no_fixed_layers():
    ev = evaluate(hwprune.network("resnet18"), hwprune.device("core-i7"), layers=["fc"])
    assert ev.fixed == () and list(ev.to_frame()["layer"]) == ["fc"]


def test_node_pruning_shrinks_the_next_layer_through_a_flatten():
    net = hwprune.network("lenet-5")        # conv2 (50 filters 4x4) -> flatten -> ip1
    shapes = shapes_as_run(net, Plan({"conv2": LayerPlan(NODE, 0.2)}))
    assert shapes["conv2"].outputs_kept == pytest.approx(0.2)
    assert shapes["ip1"].inputs_kept == pytest.approx(0.2)
    assert shapes["ip1"].layer.weight_shape == (500, 10 * 4 * 4)
    assert shapes["ip2"].inputs_kept == 1.0
    ev = evaluate(net, hwprune.device("core-i7"), Plan({"conv2": LayerPlan(NODE, 0.2)}))
    assert ev["ip1"].scheme is DENSE and ev["ip1"].weights_kept == 500 * 160


def test_a_residual_add_keeps_its_channels():
    net = hwprune.network("resnet18")
    first = next(lay.name for lay in net.weighted_layers if lay.name != "conv1")
    shapes = shapes_as_run(net, Plan({"conv1": LayerPlan(NODE, 0.5)}))
    assert shapes[first].inputs_kept < 1        # read straight from the pruned stem
    assert shapes[net.weighted_layers[-1].name].inputs_kept == 1.0


def test_an_add_loses_the_units_every_branch_removed():
    """Coupled layers (the stem and layer1's second convs, summed by layer1's adds) that
    keep the same count keep the same units: the adds and layer2's readers lose the
    rest. Different counts: at most their sum (an upper bound)."""
    net = hwprune.network("resnet18")
    stage = ("conv1", "layer1.0.conv2", "layer1.1.conv2")
    shapes = shapes_as_run(net, Plan({n: LayerPlan(NODE, 0.5) for n in stage}))
    assert shapes["layer1.1.conv1"].inputs_kept == 0.5          # after the first add
    assert shapes["layer2.0.conv1"].inputs_kept == 0.5          # after the second
    assert shapes["layer2.0.downsample.0"].inputs_kept == 0.5
    assert shapes["layer2.1.conv1"].inputs_kept == 1.0          # layer2's adds: unpruned
    uneven = Plan({"conv1": LayerPlan(NODE, 0.25), "layer1.0.conv2": LayerPlan(NODE, 0.5),
                   "layer1.1.conv2": LayerPlan(NODE, 0.5)})
    shapes = shapes_as_run(net, uneven)
    assert shapes["layer1.1.conv1"].inputs_kept == 0.75         # 16 + 32 of 64, at most
    assert shapes["layer2.0.conv1"].inputs_kept == 1.0          # 48 + 32 > 64: every unit


def test_plan_errors_are_input_errors():
    net = hwprune.network("lenet-300-100")
    with pytest.raises(InputError, match="does not have"):
        evaluate(net, hwprune.device("core-i7"), Plan({"nope": LayerPlan(FINE, 0.5)}))
    with pytest.raises(InputError, match="last conv/fc layer"):
        evaluate(net, hwprune.device("core-i7"), Plan({"ip3": LayerPlan(NODE, 0.5)}))
    with pytest.raises(InputError, match=r"density must be a fraction in \(0, 1\]"):
        LayerPlan(FINE, 1.5)


def test_normalized_energies_say_so():
    ev = evaluate(hwprune.network("lenet-300-100"), hwprune.device("eyeriss"))
    assert ev.energy_unit == "MAC-equivalents"
    assert evaluate(hwprune.network("lenet-300-100"), hwprune.device("core-i7")).energy_unit == "pJ"


def _numbers(text: str) -> list[str]:
    return re.findall(r"\d+\.\d+x", text)


@pytest.mark.parametrize("dev", DEVICES)
def test_recommendation_rows_agree_with_their_reasons(dev):
    table = recommend(hwprune.network("lenet-5"), hwprune.device(dev), 0.1)
    for row in table.itertuples():
        if row.scheme != "dense":
            assert f"{row.scheme} at {row.density:.3f}" in row.reason
            assert f"{row.speedup:.2f}x" == _numbers(row.reason)[0]
        else:
            assert row.density == 1.0
        if row.inputs_kept < 1:
            assert f"cut to {row.inputs_kept:.3f}" in row.reason


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dev=st.sampled_from(DEVICES), net=st.sampled_from(("lenet-300-100", "lenet-5")),
       density=st.floats(0.02, 1.0))
def test_a_recommended_scheme_is_never_slower_than_dense_where_it_runs(dev, net, density):
    network, device = hwprune.network(net), hwprune.device(dev)
    choice = recommend_choice(network, device, density)
    for le in choice.evaluation:
        if not le.scheme.prunes:
            continue
        dense_here = evaluate(network, device, choice.plan.with_layer(le.layer, LayerPlan()),
                              layers=[le.layer])[le.layer]
        assert le.cost.latency_s < dense_here.cost.latency_s
        assert choice.dense[le.layer].cost.latency_s / le.cost.latency_s > 1


# A toy scheme defined here alone: pairs of consecutive weights, one index per pair.
PAIRS = Scheme("toy-pairs", "pairs of consecutive weights (test only)", Group.FIXED,
               Kernel.GROUP_CSR, "simd-group", width=2)


@pytest.fixture
def toy_scheme():
    register(PAIRS)
    yield PAIRS
    unregister(PAIRS.name)


def test_a_toy_scheme_runs_through_evaluate_granularity_and_a_sweep(toy_scheme, monkeypatch):
    net, dev = hwprune.network("lenet-300-100"), hwprune.device("cortex-m4")
    ev = evaluate(net, dev, Plan.uniform(net, "toy-pairs", 0.25))
    assert {le.scheme.name for le in ev} == {"toy-pairs"}
    assert ev["ip1"].weights_kept == pytest.approx(0.25 * 300 * 784, rel=0.01)
    # granularity from the simulators with the toy scheme among the candidates
    table = recommend(net, dev, 0.25, candidates=("fine", "toy-pairs", "node"))
    assert "toy-pairs_speedup" in table.columns
    assert (table["toy-pairs_speedup"] > 1).all()
    # the CLI and the API accept its name
    assert hwprune.api.check_scheme("toy-pairs") == "toy-pairs"
    # a trade-off sweep prunes the reference model with it and costs it
    monkeypatch.setattr(tradeoff, "DENSITIES", (0.5,))
    monkeypatch.setattr(tradeoff, "TOLERANCES", ())
    monkeypatch.setattr(tradeoff, "BUDGETS", ())
    monkeypatch.setattr(tradeoff, "EPOCHS", 1)
    S._search_cached.cache_clear()
    points = tradeoff.sweep("digits-mlp", [dev])
    toy = points[points["policy"] == "toy-pairs"]
    assert len(toy) == 1 and toy["density"].iloc[0] == pytest.approx(0.5, abs=0.05)
    assert toy["energy"].iloc[0] < points[points["policy"] == "dense"]["energy"].iloc[0]


def test_breakeven_of_conv_only_schemes_on_a_network_without_convolutions_is_an_error(capsys):
    from hwprune.cli import main

    assert main(["breakeven", "lenet-300-100", "--device", "core-i7", "--schemes", "vector"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "convolutions only" in err[0]


def test_each_scheme_may_reach_its_own_density():
    from hwprune.studies.recommend import scheme_densities

    net, dev = hwprune.network("lenet-5"), hwprune.device("cortex-m4")
    assert scheme_densities("fine=0.1, simd=0.15,node=0.5") == {FINE: 0.1, SIMD: 0.15, NODE: 0.5}
    assert scheme_densities("0.3").fine == 0.3       # the others from the density model
    table = recommend(net, dev, {"simd": 0.15, "node": 0.5}).set_index("layer")
    assert set(table["scheme"]) <= {"simd", "node", "dense"} and "fine_density" not in table
    assert table.loc["ip1", "simd_density"] == 0.15 and table.loc["conv1", "node_density"] == 0.5
    assert (table.loc[table["scheme"] == "simd", "density"] == 0.15).all()


@pytest.mark.parametrize("value, phrase", [
    ("blk=0.1", "unknown scheme 'blk'"),
    ("fine=1.5", "density of fine must be a fraction"),
    ("dense=0.5", "prunes nothing"),
    ("fine=0.1,csr=0.2", "given twice"),
    ("fine", "neither a fraction"),
    ("=0.3", "is not name=value"),
])
def test_bad_per_scheme_densities_are_one_line_errors(value, phrase, capsys):
    from hwprune.cli import main

    assert main(["granularity", "lenet-5", "--device", "cortex-m4", "--density", value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hwprune: error:") and phrase in err[0]


def test_the_granularity_footer_says_which_densities_were_assumed(capsys):
    from hwprune.cli import main

    assert main(["granularity", "lenet-5", "--device", "core-i7", "--density",
                 "fine=0.1,node=0.5"]) == 0
    out = capsys.readouterr().out
    assert "assuming fine reaches 0.1, node reaches 0.5" in out
