"""Network and builder: shape inference, totals, and clear errors."""

import pytest

import hwprune
from hwprune.errors import InputError, ShapeError, UnknownNameError
from hwprune.workload import NetworkBuilder


def _residual():
    b = NetworkBuilder("res", (8, 16, 16))
    x = b.conv("stem", b.input, 16, 3, padding=1, bias=False)
    x = b.batchnorm("stem.bn", x)
    y = b.conv("body", x, 16, 3, padding=1, bias=False)
    z = b.add("sum", [x, y])
    z = b.global_avgpool("gap", z)
    b.fc("fc", z, 10)
    return b.build(description="tiny residual net")


def test_builder_infers_shapes_and_totals_add_up():
    net = _residual()
    assert net["sum"].output_shape == (16, 16, 16)
    assert net["fc"].input_shape == (16, 1, 1)
    assert net.output_shape == (10,)
    assert net.macs == sum(layer.macs for layer in net)
    assert net.params == 16 * 8 * 9 + 32 + 16 * 16 * 9 + 16 * 10 + 10
    table = hwprune.show(net)
    assert table["macs"].sum() == net.macs
    assert table["params"].sum() == net.params
    assert list(table["layer"]) == [layer.name for layer in net]
    assert [layer.name for layer in net.weighted_layers] == ["stem", "body", "fc"]


def test_builder_errors_name_the_layer():
    b = NetworkBuilder("bad", (3, 8, 8))
    x = b.conv("c1", b.input, 4, 3)
    with pytest.raises(ShapeError, match="layer 'c2'.*larger than"):
        b.conv("c2", x, 4, 9)
    with pytest.raises(ShapeError, match="already used"):
        b.conv("c1", x, 4, 1)
    with pytest.raises(ShapeError, match="unknown"):
        b.fc("fc", "nowhere", 3)


def test_network_rejects_duplicate_and_dangling_layers():
    net = _residual()
    with pytest.raises(InputError, match="used twice"):
        type(net)(net.name, net.input_shape, net.layers + net.layers[:1])
    with pytest.raises(InputError, match="no earlier layer"):
        type(net)(net.name, net.input_shape, net.layers[::-1])


def test_unknown_layer_lists_the_layers():
    with pytest.raises(UnknownNameError, match="stem, stem.bn"):
        _residual()["nope"]
