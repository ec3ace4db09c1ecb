"""ONNX import of torchvision's models (untrained) from both of torch's exporters.

Each model is exported once per route into a temporary folder: ``dynamo`` (torch's
default exporter, ``dynamo=True``), ``legacy-folded`` and ``legacy-unfolded`` (the
TorchScript exporter, ``dynamo=False``, with ``do_constant_folding`` True and False).
hwprune's parameters must equal torch's ``sum(p.numel())`` up to the documented
conventions (``_expected_params``), and its MACs be within 1% of torch's own count
(``torch.utils.flop_counter.FlopCounterMode``, one MAC per two FLOPs).

Input sizes: 64x64 where the network ends in a global pool (the layers and their
weights are the same at any size; the exports are faster); 224x224 for AlexNet and
VGG, whose adaptive pooling to (6, 6) or (7, 7) is the identity only there; ViT-B/16
built for 32x32 images (``image_size=32``: 4 patches and the class token; its position
embedding has 5 rows instead of 197, everything else as vit_b_16); the transformer
blocks on 16 tokens of 64 features.

torch's FlopCounterMode has no formula for the CPU attention kernel
(``aten._scaled_dot_product_flash_attention_for_cpu``, which ``nn.MultiheadAttention``
calls) and counts it as 0 FLOPs; the count here adds its Q K^T and A V products
(``_sdpa_flops``), as hwprune's two matmul layers count them.
"""

from __future__ import annotations

import math
import os
import time
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
pytest.importorskip("onnxscript")           # the dynamo exporter needs it

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from hwprune.errors import InputError  # noqa: E402
from hwprune.workload.onnx_import import load_onnx  # noqa: E402


class PreLNBlock(nn.Module):
    """A pre-LN transformer encoder block written out: layer norm, fused QKV projection,
    attention by hand (Q K^T, scale, softmax, A V), output projection, layer norm, GELU
    MLP, residual adds."""

    def __init__(self, d=64, heads=4, ff=128):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, ff), nn.Linear(ff, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = ((q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5).softmax(-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class DilatedNet(nn.Module):
    """Dilated and 'same'-padded 2-D convolutions, nearest upsampling, a dilated strided
    1-D convolution over the flattened map, a mean over the sequence, a linear head."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, dilation=2, padding=2)
        self.c2 = nn.Conv2d(8, 8, 3, padding="same", dilation=2)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.c3 = nn.Conv1d(8, 16, 5, stride=2, dilation=2, padding=4)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.up(F.relu(self.c2(F.relu(self.c1(x)))))
        x = F.relu(self.c3(x.flatten(2)))
        return self.fc(x.mean(-1))


def _encoder_layer():
    return nn.TransformerEncoderLayer(64, 4, 128, batch_first=True)


LOCAL = {"preln_block": (PreLNBlock, (1, 16, 64)), "transformer_encoder_layer": (_encoder_layer, (1, 16, 64)),
         "dilated_conv1d_upsample": (DilatedNet, (1, 3, 16, 16))}

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
    "vit_b_16": ({"image_size": 32}, 32),
    **{name: ({}, None) for name in LOCAL},
}
ROUTES = ("dynamo", "legacy-folded", "legacy-unfolded")
# The whole matrix (every model, route and the trained-like variants) takes about 9
# minutes on 2 cores; by default one model per family of operators runs (about 2.5):
# HWPRUNE_ONNX_ZOO=full runs them all.
FULL = os.environ.get("HWPRUNE_ONNX_ZOO") == "full"
DEFAULT = ("resnet18", "mobilenet_v3_small", "shufflenet_v2_x1_0", "densenet121", "convnext_tiny",
           "vit_b_16", "preln_block", "transformer_encoder_layer", "dilated_conv1d_upsample")
TABLE: dict[tuple[str, str], dict] = {}     # filled as the tests run; printed by -s


TRAINED_LIKE = ("resnet18", "mobilenet_v3_small", "convnext_tiny", "vit_b_16", "preln_block")
"""Models also tested with every parameter and batch-norm statistic perturbed (no zero
bias, no unit batch norm left for an exporter to drop)."""


def _model(name: str, trained_like: bool = False):
    torch.manual_seed(0)
    if name in LOCAL:
        factory, shape = LOCAL[name]
        model, x = factory().eval(), torch.randn(*shape)
    else:
        kwargs, size = MODELS[name]
        model, x = getattr(torchvision.models, name)(**kwargs).eval(), torch.randn(1, 3, size, size)
    if trained_like:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01 * torch.randn_like(p))
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.running_mean.normal_(0, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
    return model, x


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


def _sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of attention's Q K^T and A V: 2 * batch * heads * L * S * (E + Ev)."""
    *batch, length, e = query_shape
    return 2 * math.prod(batch) * length * key_shape[-2] * (e + value_shape[-1])


def _torch_macs(model, x) -> int:
    from torch.utils.flop_counter import FlopCounterMode
    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_flops}
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        model(x)
    return counter.get_total_flops() // 2


@pytest.fixture(scope="module", autouse=True)
def _no_fast_path():
    """nn.MultiheadAttention's inference fast path is one fused kernel that
    FlopCounterMode cannot see into; the exporters trace the same module either way."""
    enabled = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    yield
    torch.backends.mha.set_fastpath_enabled(enabled)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each (model, route) exported once: the ONNX path and torch's counts."""
    folder = tmp_path_factory.mktemp("onnx-zoo")
    cache: dict[tuple[str, str], tuple] = {}

    def get(name: str, route: str, trained_like: bool = False):
        if (name, route, trained_like) not in cache:
            model, x = _model(name, trained_like)
            path = folder / f"{name}-{route}{'-trained' if trained_like else ''}.onnx"
            try:
                _export(model, x, route, path)
            except TypeError as exc:
                if name == "transformer_encoder_layer" and route != "dynamo" and "is_causal" in str(exc):
                    pytest.skip(f"torch's legacy exporter cannot export nn.TransformerEncoderLayer: {exc}")
                raise
            cache[name, route, trained_like] = (path, _expected_params(model, x, route),
                                                sum(p.numel() for p in model.parameters()),
                                                _torch_macs(model, x))
        return cache[name, route, trained_like]

    return get


def _check(exported, name, route, trained_like):
    path, expected_params, torch_params, torch_macs = exported(name, route, trained_like)
    start = time.perf_counter()
    net = load_onnx(path).network
    seconds = time.perf_counter() - start
    key = (name + ("/trained-like" if trained_like else ""), route)
    TABLE[key] = dict(layers=len(net.layers), macs=net.macs, torch_macs=torch_macs,
                      params=net.params, expected_params=expected_params, torch_params=torch_params,
                      seconds=round(seconds, 3))
    print(f"\n{key[0]} {route}: {TABLE[key]}")
    assert net.params == expected_params
    assert net.macs == pytest.approx(torch_macs, rel=0.01)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("name", list(MODELS) if FULL else DEFAULT)
def test_model_imports_with_torch_counts(exported, name, route):
    _check(exported, name, route, False)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("name", TRAINED_LIKE if FULL else ("resnet18", "preln_block"))
def test_trained_like_model_imports_with_torch_counts(exported, name, route):
    _check(exported, name, route, True)


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


def test_a_constant_node_the_reference_evaluator_cannot_compute_is_an_error_naming_it(tmp_path):
    nodes = [helper.make_node("MatMul", ["a", "b"], ["ab"], name="bad_fold"),
             helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Add", ["c", "ab"], ["y"], name="add")]
    inits = [_w("a", 2, 3), _w("b", 4, 5), _w("w", 4, 3, 3, 3)]
    with pytest.raises(InputError, match="'bad_fold' \\(MatMul\\): all its inputs are constants"):
        load_onnx(_save(tmp_path, nodes, inits, (1, 4, 6, 6)))


def test_attention_with_the_batch_axis_moved_imports_as_views_and_matmuls(tmp_path):
    """(1, T, D) -> Transpose to (T, 1, D) -> MatMul with a weight -> Reshape to
    (T, heads, d) -> Transpose to (heads, T, d) -> Q K^T: torch's attention layout."""
    t, d, heads = 5, 8, 2
    i64 = numpy_helper.from_array(np.asarray([t, heads, d // heads], np.int64), "hd")
    nodes = [helper.make_node("Transpose", ["x"], ["tb"], name="to_tbd", perm=[1, 0, 2]),
             helper.make_node("MatMul", ["tb", "wq"], ["q"], name="q_proj"),
             helper.make_node("Reshape", ["q", "hd"], ["qh"], name="split_heads"),
             helper.make_node("Transpose", ["qh"], ["q2"], name="heads_first", perm=[1, 0, 2]),
             helper.make_node("Transpose", ["q2"], ["k2"], name="k_t", perm=[0, 2, 1]),
             helper.make_node("MatMul", ["q2", "k2"], ["y"], name="scores")]
    net = load_onnx(_save(tmp_path, nodes, [_w("wq", d, d), i64], (heads, t, t), in_shape=(1, t, d))).network
    layers = {lay.name: lay for lay in net.layers}
    assert layers["q_proj"].kind == "fc" and layers["q_proj"].macs == t * d * d
    assert layers["scores"].kind == "matmul" and layers["scores"].macs == heads * t * (d // heads) * t
    assert layers["scores"].output_shape == (heads, t, t)
    assert net.macs == t * d * d + heads * t * (d // heads) * t
