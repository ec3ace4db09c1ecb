"""ONNX import of torchvision's models (untrained) from both of torch's exporters.

Each model is exported once per route into a temporary folder: ``dynamo`` (torch's
default exporter, ``dynamo=True``), ``legacy-folded`` and ``legacy-unfolded`` (the
TorchScript exporter, ``dynamo=False``, with ``do_constant_folding`` True and False).
hwprune's parameters must equal torch's ``sum(p.numel())`` up to the documented
conventions (``_expected_params``), and its MACs be within 1% of torch's own count
(``torch.utils.flop_counter.FlopCounterMode``, one MAC per two FLOPs).

Input sizes: 64x64 where the network ends in a global pool (the layers and their
weights are the same at any size; the exports are faster); 224x224 for AlexNet and
VGG, whose adaptive pooling to (6, 6) or (7, 7) is the identity only there.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
pytest.importorskip("onnxscript")           # the dynamo exporter needs it

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from hwprune.errors import InputError  # noqa: E402
from hwprune.workload.onnx_import import load_onnx  # noqa: E402

# name: (keyword arguments of torchvision's constructor, input height = width)
MODELS = {
    "resnet18": ({}, 64),
    "resnet50": ({}, 64),
    "squeezenet1_0": ({}, 64),
    "regnet_x_400mf": ({}, 64),
    "googlenet": ({"aux_logits": False, "init_weights": True}, 64),   # eval: no auxiliary heads
    "alexnet": ({}, 224),
    "vgg11": ({}, 224),
    "vgg16": ({}, 224),
    "mobilenet_v2": ({}, 64),
    "mobilenet_v3_small": ({}, 64),
    "mobilenet_v3_large": ({}, 64),
    "efficientnet_b0": ({}, 64),
    "shufflenet_v2_x1_0": ({}, 64),
    "densenet121": ({}, 64),
    "convnext_tiny": ({}, 64),
}
ROUTES = ("dynamo", "legacy-folded", "legacy-unfolded")
TABLE: dict[tuple[str, str], dict] = {}     # filled as the tests run; printed by -s


def _model(name: str):
    kwargs, size = MODELS[name]
    torch.manual_seed(0)
    return getattr(torchvision.models, name)(**kwargs).eval(), torch.randn(1, 3, size, size)


def _export(model, x, route: str, path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if route == "dynamo":
            torch.onnx.export(model, (x,), str(path), dynamo=True, verbose=False)
        else:
            torch.onnx.export(model, (x,), str(path), dynamo=False,
                              do_constant_folding=route == "legacy-folded")


def _bn_after_conv(model, x) -> tuple[list[tuple[torch.nn.Module, torch.nn.Module]], set[int]]:
    """(conv, batch norm) pairs where the batch norm reads the conv's output directly,
    and the ids of the linear layers applied to more than (batch, features)."""
    produced, pairs, keep, tokens = {}, [], [], set()

    def hook(module, inputs, output):
        keep.append(output)                   # keeps ids unique while the forward runs
        if isinstance(module, torch.nn.Linear) and inputs[0].dim() > 2:
            tokens.add(id(module))
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            conv = produced.get(id(inputs[0]))
            if conv is not None:
                pairs.append((conv, module))
        elif isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            produced[id(output)] = module

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return pairs, tokens


def _expected_params(model, x, route: str) -> int:
    """torch's ``sum(p.numel())`` in hwprune's conventions for ``route``:

    - a batch norm folded into the convolution before it carries no parameters of its
      own (-2C; hwprune folds on import, the exporters fold on export);
    - the legacy exporter's fold gives a bias-free convolution a bias (+C);
    - the dynamo exporter's optimiser drops a Conv's or Gemm's bias input that is all
      zeros, a folded batch norm's included (untrained: zero-initialised biases, unit
      batch norms; -numel); a linear layer over tokens (MatMul, then Add) keeps it.
    """
    total = sum(p.numel() for p in model.parameters())
    pairs, tokens = _bn_after_conv(model, x)
    folded_convs = {id(conv) for conv, _ in pairs}
    for conv, bn in pairs:
        total -= 2 * bn.num_features
        if route == "legacy-folded" and conv.bias is None:
            total += bn.num_features
        if route == "dynamo":
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            fused = bn.bias + ((0 if conv.bias is None else conv.bias) - bn.running_mean) * scale
            if conv.bias is None and bool(torch.any(fused != 0)):
                total += bn.num_features
            if conv.bias is not None and not bool(torch.any(fused != 0)):
                total -= conv.bias.numel()
    if route == "dynamo":
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.bias is not None \
                    and id(m) not in folded_convs and id(m) not in tokens \
                    and not bool(torch.any(m.bias != 0)):
                total -= m.bias.numel()
    return total


def _torch_macs(model, x) -> int:
    from torch.utils.flop_counter import FlopCounterMode
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each (model, route) exported once: the ONNX path and torch's counts."""
    folder = tmp_path_factory.mktemp("onnx-zoo")
    cache: dict[tuple[str, str], tuple] = {}

    def get(name: str, route: str):
        if (name, route) not in cache:
            model, x = _model(name)
            path = folder / f"{name}-{route}.onnx"
            _export(model, x, route, path)
            cache[name, route] = (path, _expected_params(model, x, route),
                                  sum(p.numel() for p in model.parameters()), _torch_macs(model, x))
        return cache[name, route]

    return get


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("name", list(MODELS))
def test_torchvision_model_imports_with_torch_counts(exported, name, route):
    path, expected_params, torch_params, torch_macs = exported(name, route)
    start = time.perf_counter()
    net = load_onnx(path).network
    seconds = time.perf_counter() - start
    TABLE[name, route] = dict(layers=len(net.layers), macs=net.macs, torch_macs=torch_macs,
                              params=net.params, torch_params=torch_params, seconds=seconds)
    print(f"\n{name} {route}: {TABLE[name, route]}")
    assert net.params == expected_params
    assert net.macs == pytest.approx(torch_macs, rel=0.01)


def test_expected_params_follow_the_documented_conventions():
    """The conventions above on a conv + batch norm + linear with a zero bias, by hand."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.BatchNorm2d(4),
                                torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 2)).eval()
    torch.nn.init.zeros_(model[3].bias)
    x = torch.randn(1, 3, 6, 6)
    raw = 3 * 4 * 9 + 8 + 64 * 2 + 2
    assert _expected_params(model, x, "legacy-unfolded") == raw - 8
    assert _expected_params(model, x, "legacy-folded") == raw - 8 + 4
    assert _expected_params(model, x, "dynamo") == raw - 8 - 2


def _save(tmp_path, nodes, inits, out_shape, in_shape=(1, 3, 8, 8), opset=18):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset),
                                                    helper.make_opsetid("my.ops", 1)])
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    return path


def _w(name, *shape):
    return numpy_helper.from_array(np.ones(shape, np.float32), name)


def test_unknown_operator_is_an_error_naming_it_its_node_and_input_shapes(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Warp", ["c", "grid"], ["y"], name="warp1", domain="my.ops")]
    path = _save(tmp_path, nodes, [_w("w", 4, 3, 3, 3), _w("grid", 2, 2)], (1, 4, 3, 3))
    with pytest.raises(InputError) as err:
        load_onnx(path)
    message = str(err.value)
    assert "my.ops.Warp" in message and "'warp1'" in message
    assert "(1, 4, 6, 6), (2, 2)" in message


def test_merged_initialisers_shape_arithmetic_and_constant_axes_are_simplified(tmp_path):
    """What the exporters write: an Identity of a shared initialiser (legacy, merged zero
    biases), a Shape -> Gather -> Unsqueeze -> Concat reshape target (legacy without
    constant folding) and ReduceMean with its axes as an input (dynamo, opset 18)."""
    i64 = lambda name, v: numpy_helper.from_array(np.asarray(v, np.int64), name)  # noqa: E731
    nodes = [
        helper.make_node("Identity", ["zeros"], ["bias2"], name="Identity_0"),
        helper.make_node("Conv", ["x", "w1", "zeros"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["c1", "w2", "bias2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("ReduceMean", ["c2", "axes"], ["m"], name="mean", keepdims=1),
        helper.make_node("Shape", ["m"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "zero"], ["n"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["n", "zero1"], ["n1"], name="unsq"),
        helper.make_node("Concat", ["n1", "minus1"], ["target"], name="cat", axis=0),
        helper.make_node("Reshape", ["m", "target"], ["f"], name="view"),
        helper.make_node("Gemm", ["f", "fc"], ["y"], name="fc", transB=1),
    ]
    inits = [_w("w1", 4, 3, 3, 3), _w("w2", 4, 4, 3, 3), numpy_helper.from_array(
        np.zeros(4, np.float32), "zeros"), _w("fc", 5, 4), i64("axes", [-1, -2]), i64("zero", 0),
        i64("zero1", [0]), i64("minus1", [-1])]
    net = load_onnx(_save(tmp_path, nodes, inits, (1, 5))).network
    assert [lay.kind for lay in net.layers] == ["conv", "conv", "global_avgpool", "flatten", "fc"]
    assert net.params == 4 * 27 + 4 + 4 * 36 + 4 + 20
    assert net.macs == 64 * 4 * 27 + 64 * 4 * 36 + 20
    assert math.prod(net.layers[-1].input_shapes[0]) == 4
