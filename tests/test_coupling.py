"""Coupled layers read from any network's graph (hwprune.workload.coupling), and the
per-layer choice that prunes a coupled group's units together or not at all."""

import pytest

import hwprune
from hwprune.studies.recommend import recommend_choice
from hwprune.workload.builder import NetworkBuilder
from hwprune.workload.coupling import unit_couplings


def test_resnet18_stages_and_mobilenet_depthwise_pairs():
    c = unit_couplings(hwprune.network("resnet18"))
    assert c.groups[0] == ("conv1", "layer1.0.conv2", "layer1.1.conv2")
    assert c.groups[1:] == tuple((f"layer{s}.0.conv2", f"layer{s}.0.downsample.0", f"layer{s}.1.conv2")
                                 for s in (2, 3, 4))
    assert not c.fixed
    m = unit_couplings(hwprune.network("mobilenet-v1"))
    assert m.groups[0] == ("Conv2d_0", "Conv2d_1_depthwise")
    assert all(g[1].endswith("_depthwise") and len(g) == 2 for g in m.groups)
    assert unit_couplings(hwprune.network("lenet-5")).groups == ()


def test_an_add_of_the_input_fixes_its_group_and_a_concat_ends_a_chain():
    b = NetworkBuilder("toy", (4, 8, 8))
    x = b.conv("x", b.input, 4, 3, padding=1)
    y = b.conv("y", x, 4, 3, padding=1)
    s = b.add("sum", [y, b.input])                   # y's units meet the input's channels
    c1 = b.conv("c1", s, 4, 3, padding=1)
    c2 = b.conv("c2", s, 4, 3, padding=1)
    cat = b.concat("cat", [c1, c2])                   # a new tensor: c1 and c2 stay free
    d = b.conv("d", cat, 8, 1)
    e = b.conv("e", cat, 8, 1)
    b.add("sum2", [d, e])
    c = unit_couplings(b.build())
    assert c.groups == (("d", "e"),)
    assert c.fixed == frozenset({"y"})


def test_the_graph_couplings_match_torch_pruning_on_resnet18():
    torch = pytest.importorskip("torch")
    pytest.importorskip("torch_pruning")
    import importlib.util
    import pathlib

    from hwprune.workload.torch_import import coupled_groups, from_torch

    path = pathlib.Path(__file__).parents[1] / "examples" / "resnet18_torch.py"
    spec = importlib.util.spec_from_file_location("resnet18_torch", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    module, x = example.ResNet18(classes=10, width=8).eval(), torch.zeros(1, 3, 32, 32)
    ours = unit_couplings(from_torch(module, x).network).groups
    theirs = tuple(g for g in coupled_groups(module, x) if len(g) > 1)
    assert set(map(frozenset, ours)) == set(map(frozenset, theirs))


@pytest.mark.parametrize("dev", ["cortex-m4", "titan-x"])
def test_a_coupled_group_takes_node_pruning_together_or_not_at_all(dev):
    net = hwprune.network("resnet18")
    choice = recommend_choice(net, hwprune.device(dev), 0.3)
    for group in unit_couplings(net).groups:
        removes = {choice.plan[m].scheme.removes_units for m in group}
        assert len(removes) == 1, (group, [choice.plan[m].scheme.name for m in group])
        if removes == {True}:
            assert len({choice.plan[m].density for m in group}) == 1
