"""Latency never increases as density falls: every scheme, every built-in device.

Issue 19 item 4. A pruning scheme that keeps fewer weights (groups, rows) must never
be predicted slower than the same scheme keeping more: otherwise break-even densities
and the per-layer choice read a model artefact as a hardware effect.
"""

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import hwprune
from hwprune.hardware.registry import list_devices
from hwprune.latency import layer_latency
from hwprune.schemes import all_schemes

LAYERS = [
    ("lenet-300-100", "ip1"), ("lenet-300-100", "ip3"),
    ("lenet-5", "conv1"), ("lenet-5", "conv2"), ("lenet-5", "ip1"),
    ("cifar10-quick", "conv2"), ("nin-cifar10", "cccp1"),
    ("alexnet", "conv1"), ("alexnet", "conv4"), ("alexnet", "fc8"),
    ("mobilenet-v1", "Conv2d_2_depthwise"),
]
"""Conv and fc layers of the built-in networks: small and large, grouped and depthwise,
1x1 and 11x11 kernels, matrix-vector and matrix-matrix."""


def _device_ids() -> list[str]:
    """Every built-in device profile (a new built-in is covered without editing this)."""
    return sorted(d.id for d in list_devices())


def _layer(net: str, name: str):
    network = hwprune.network(net)
    names = [lay.name for lay in network.weighted_layers]
    if name not in names:          # keep the test honest if a built-in renames a layer
        pytest.fail(f"{net} has no layer {name!r}; its conv/fc layers: {names}")
    return network[name]


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_latency_never_rises_as_density_falls(data):
    dev_id = data.draw(st.sampled_from(_device_ids()), label="device")
    net, name = data.draw(st.sampled_from(LAYERS), label="layer")
    s = data.draw(st.sampled_from([s.name for s in all_schemes() if s.prunes]), label="scheme")
    batch = data.draw(st.sampled_from([1, 1, 4]), label="batch")
    d1 = data.draw(st.floats(0.01, 1.0), label="d1")
    d2 = data.draw(st.floats(0.01, 1.0), label="d2")
    lo, hi = sorted((d1, d2))
    dev = hwprune.device(dev_id)
    layer = _layer(net, name)
    fast = layer_latency(layer, dev, s, lo, batch=batch)
    slow = layer_latency(layer, dev, s, hi, batch=batch)
    assert fast.cycles <= slow.cycles * (1 + 1e-9), (
        f"{s} on {net}/{name} at batch {batch} on {dev_id}: {fast.cycles:.6g} cycles at "
        f"density {lo:.4g} > {slow.cycles:.6g} at {hi:.4g} ({dict(fast.parts)} vs {dict(slow.parts)})")


@pytest.mark.parametrize("dev_id", _device_ids())
def test_latency_on_a_dense_grid_never_rises(dev_id):
    """A fixed grid on every built-in device: what hypothesis might not draw."""
    dev = hwprune.device(dev_id)
    grid = [1.0, 0.9, 0.7, 0.5, 0.35, 0.2, 0.12, 0.07, 0.04, 0.02, 0.01]
    for net, name in [("lenet-5", "conv2"), ("lenet-300-100", "ip1")]:
        layer = _layer(net, name)
        for s in (s.name for s in all_schemes() if s.prunes):
            cycles = [layer_latency(layer, dev, s, d).cycles for d in grid]
            rises = [(grid[i], grid[i + 1]) for i in range(len(grid) - 1)
                     if cycles[i + 1] > cycles[i] * (1 + 1e-9)]
            assert not rises, f"{s} on {net}/{name} on {dev_id} rises between densities {rises}"


NODE_PAIRS = [("lenet-5", "conv1", "conv2"), ("lenet-5", "conv2", "ip1"),
              ("lenet-300-100", "ip1", "ip2"), ("cifar10-quick", "conv1", "conv2")]
"""(network, producer, consumer): node pruning the producer removes the consumer's inputs."""


@settings(max_examples=40, deadline=None)
@given(dev_id=st.sampled_from(_device_ids()), pair=st.sampled_from(NODE_PAIRS),
       keep=st.lists(st.floats(0.05, 1.0), min_size=4, max_size=4))
@example(dev_id="titan-x", pair=NODE_PAIRS[0], keep=[9 / 20, 1.0, 18 / 50, 1.0])
@example(dev_id="eyeriss", pair=NODE_PAIRS[3], keep=[0.75, 0.59375, 1.0, 1.0])
def test_a_smaller_dense_layer_never_takes_longer(dev_id, pair, keep):
    """Node pruning leaves a smaller dense layer: fewer rows (its own units) or fewer
    columns (the units the layer before removed) never cost more time."""
    from hwprune.evaluate import LayerPlan, Plan, evaluate

    dev = hwprune.device(dev_id)
    net_name, producer, consumer = pair
    net = hwprune.network(net_name)
    (p_lo, p_hi), (c_lo, c_hi) = sorted(keep[:2]), sorted(keep[2:])

    def seconds(p: float, c: float) -> float:
        plan = Plan.uniform(net, "dense", 1.0).with_layer(producer, LayerPlan("node", p)) \
            .with_layer(consumer, LayerPlan("node", c))
        return next(le.latency.seconds for le in evaluate(net, dev, plan).layers
                    if le.layer == consumer)

    small, big = seconds(p_lo, c_lo), seconds(p_hi, c_hi)
    assert small <= big * (1 + 1e-9), (
        f"{net_name}/{consumer} on {dev.id}: {small:.4g} s with inputs kept {p_lo:.3g} and rows "
        f"kept {c_lo:.3g}, more than {big:.4g} s with {p_hi:.3g} and {c_hi:.3g}")


@pytest.mark.parametrize("dev_id", _device_ids())
def test_losing_inputs_on_a_grid_never_slows_the_next_layer(dev_id):
    """Every input count of cifar10-quick's conv2 (conv1 node-pruned to 4..32 filters):
    the accelerator's energy-optimal mappings differ from count to count, and a layer
    that lost more inputs must still never be slower."""
    from hwprune.evaluate import LayerPlan, Plan, evaluate

    dev = hwprune.device(dev_id)
    net = hwprune.network("cifar10-quick")
    seconds = []
    for kept in range(4, 33):
        plan = Plan.uniform(net, "dense", 1.0).with_layer("conv1", LayerPlan("node", kept / 32))
        seconds.append(next(le.latency.seconds for le in evaluate(net, dev, plan).layers
                            if le.layer == "conv2"))
    rises = [(4 + i, 5 + i) for i in range(len(seconds) - 1)
             if seconds[i] > seconds[i + 1] * (1 + 1e-9)]
    assert not rises, f"conv2 on {dev_id} is slower with fewer inputs kept: {rises}"
