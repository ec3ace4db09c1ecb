"""Issue 21: the models people deploy, through the torch.fx route (``from_torch``).

Every model's MACs are compared with torch's own count
(``torch.utils.flop_counter.FlopCounterMode``: one MAC is two of its FLOPs) and its
parameters with ``sum(p.numel() for p in model.parameters())``. Both must be equal.

Conventions of the comparison:
- torch's counter runs on fake tensors (shapes only) with scaled-dot-product attention
  forced to its math backend. On the CPU's fused attention kernel the counter counts
  nothing for attention's two matrix products: 715,327,488 MACs (4.2%) of vit_b_16.
- Batch norms are imported as layers (``fold_batchnorm=False``); folded (the default),
  their scale and shift (2 per channel) are not parameters of the network.
- GoogLeNet is built with ``aux_logits=False``: its auxiliary classifiers run only in
  training, so the inference graph does not read their 6,379,984 parameters.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

from transformer_blocks import PreLNBlock, TimmAttention, TinyViT  # noqa: E402

from hwprune.errors import InputError, ShapeError  # noqa: E402
from hwprune.workload import ops as O  # noqa: E402
from hwprune.workload.builder import NetworkBuilder  # noqa: E402
from hwprune.workload.torch_import import from_torch  # noqa: E402


def torch_counts(model, x) -> tuple[int, int]:
    """(MACs per sample, parameters) by torch's own counters."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with FakeTensorMode(allow_non_fake_inputs=True) as mode, sdpa_kernel(SDPBackend.MATH), counter:
        model(mode.from_tensor(x))
    return counter.get_total_flops() // 2 // x.shape[0], sum(p.numel() for p in model.parameters())


def imported(model, x, **kw):
    """The network, with no import warning allowed (nothing skipped)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return from_torch(model.eval(), x, **kw)


# -- torchvision's classification zoo, untrained, 1x3x224x224 --------------------------

ZOO = ["resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
       "efficientnet_b0", "shufflenet_v2_x1_0", "densenet121", "convnext_tiny", "regnet_x_400mf",
       "squeezenet1_0", "vgg11", "vgg16", "alexnet", "googlenet", "vit_b_16"]
KWARGS = {"googlenet": {"aux_logits": False, "init_weights": True}}


def _zoo_model(name):
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    return getattr(tv.models, name)(**KWARGS.get(name, {})).eval()


@pytest.mark.parametrize("name", ZOO)
def test_torchvision_model_imports_with_torchs_counts(name):
    model = _zoo_model(name)
    x = torch.randn(1, 3, 224, 224)
    start = time.perf_counter()
    net = imported(model, x, fold_batchnorm=False).network
    seconds = time.perf_counter() - start
    macs, params = torch_counts(model, x)
    print(f"{name}: {len(net)} layers, MACs {net.macs:,} (torch {macs:,}), params {net.params:,} "
          f"(torch {params:,}), import {seconds:.2f} s")
    assert net.params == params
    assert net.macs == macs
    assert net.output_shape == (1000,)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_folded_batch_norms_leave_out_only_their_scale_and_shift(name):
    model = _zoo_model(name)
    x = torch.randn(1, 3, 224, 224)
    folded, kept = imported(model, x).network, imported(model, x, fold_batchnorm=False).network
    bn = sum(m.weight.numel() + m.bias.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert folded.macs == kept.macs
    assert folded.params == kept.params - bn
    assert not [lay for lay in folded if lay.kind == "batchnorm"]


def test_vit_layers_are_the_papers():
    net = imported(_zoo_model("vit_b_16"), torch.randn(1, 3, 224, 224)).network
    kinds = [lay.kind for lay in net]
    assert kinds.count("matmul") == 24 and kinds.count("layernorm") == 25
    assert net["encoder.layers.encoder_layer_0.self_attention.scores"].output_shape == (12, 197, 197)
    qkv = net["encoder.layers.encoder_layer_0.self_attention.q_proj"]
    assert qkv.kind == "fc" and qkv.weight_shape == (768, 768) and qkv.macs == 197 * 768 * 768
    assert net["class_token"].params == 768 and net["encoder.pos_embedding"].output_shape == (197, 768)


# -- transformers ----------------------------------------------------------------------

TOKENS = torch.randn(2, 16, 64)


def _encoder_layer(**kw):
    torch.manual_seed(0)
    return nn.TransformerEncoderLayer(64, 4, 128, batch_first=True, **kw)


@pytest.mark.parametrize("make, x", [
    (lambda: PreLNBlock(64, 4), TOKENS),
    (lambda: TinyViT(), torch.randn(2, 3, 32, 32)),
    (lambda: TimmAttention(fused=True), TOKENS),
    (lambda: TimmAttention(fused=False), TOKENS),
    (lambda: _encoder_layer(norm_first=True, activation="gelu"), TOKENS),
    (lambda: _encoder_layer(), TOKENS),
    (lambda: nn.TransformerEncoder(_encoder_layer(), 2, enable_nested_tensor=False), TOKENS),
], ids=["pre-ln-block", "tiny-vit", "timm-attention-sdpa", "timm-attention",
        "TransformerEncoderLayer-pre-ln-gelu", "TransformerEncoderLayer", "TransformerEncoder"])
def test_transformers_import_with_torchs_counts(make, x):
    model = make().eval()
    net = imported(model, x).network
    macs, params = torch_counts(model, x)
    assert (net.macs, net.params) == (macs, params)


def test_hand_written_attention_is_matmuls_between_activations():
    net = imported(PreLNBlock(64, 4), TOKENS).network
    mm = [lay for lay in net if lay.kind == "matmul"]
    assert [lay.output_shape for lay in mm] == [(4, 16, 16), (4, 16, 16)]
    assert all(lay.macs == 4 * 16 * 16 * 16 and not lay.has_weights for lay in mm)
    assert net["attn.qkv"].weight_shape == (192, 64)
    assert [lay.op.fn for lay in net if lay.kind == "activation"] == ["softmax", "gelu"]


def test_transformer_encoder_layer_expands_into_named_layers():
    net = imported(_encoder_layer(), TOKENS).network
    names = [lay.name for lay in net]
    for name in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.scores",
                 "self_attn.softmax", "self_attn.context", "self_attn.out_proj", "residual1", "norm1",
                 "linear1", "linear2", "residual2", "norm2"):
        assert name in names
    assert names.index("norm1") > names.index("residual1")         # post-norm by default


def test_sequence_first_attention_is_refused():
    with pytest.raises(InputError, match="batch_first=True"):
        from_torch(nn.TransformerEncoderLayer(64, 4, 128), TOKENS)


def test_linear_over_tokens_counts_every_token():
    """Was 1024->256: flattened tokens, params 278,528 instead of 33,024."""
    net = imported(nn.Linear(128, 256), torch.randn(2, 16, 128)).network
    (lay,) = net.layers
    assert lay.kind == "fc" and lay.has_weights and lay.output_shape == (16, 256)
    assert lay.weight_shape == (256, 128)
    assert (lay.params, lay.macs) == (128 * 256 + 256, 16 * 128 * 256)


# -- functional forms and the smaller operators ----------------------------------------


class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding="same", dilation=2)
        self.conv1d = nn.Conv1d(8, 4, 3, padding=2, dilation=2)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear")
        self.gn = nn.GroupNorm(2, 8)
        self.fc = nn.Linear(4 * 9, 5)

    def forward(self, x):
        n, c, h, w = x.shape
        x = self.gn(self.conv(x))
        x = F.max_pool2d(x, 2) * torch.sigmoid(F.adaptive_avg_pool2d(x, 1))     # squeeze-excite
        x = F.adaptive_avg_pool2d(self.up(x), (3, 3))
        y = self.conv1d(x.reshape(n, c * 0 + 8, 9))
        return self.fc(torch.flatten(F.silu(y), 1))


def test_functional_forms_and_small_operators():
    model = Functional().eval()
    x = torch.randn(2, 3, 12, 12)
    net = imported(model, x).network
    macs, params = torch_counts(model, x)
    assert (net.macs, net.params) == (macs, params)
    kinds = [lay.kind for lay in net]
    for kind in ("groupnorm", "elementwise", "global_avgpool", "upsample", "adaptive_avgpool", "reshape"):
        assert kind in kinds
    assert net["conv"].op.dilation == (2, 2) and net["conv"].output_shape == (8, 12, 12)
    assert net["conv1d"].weight_shape == (4, 8, 1, 3) and net["conv1d.as1d"].output_shape == (4, 9)


def test_shufflenet_chunk_and_channel_shuffle_are_data_movement():
    net = imported(_zoo_model("shufflenet_v2_x1_0"), torch.randn(1, 3, 224, 224)).network
    kinds = {lay.kind for lay in net}
    assert {"slice", "reshape", "permute", "reduce"} <= kinds
    assert all(lay.macs == 0 and lay.params == 0 for lay in net if O.CATEGORIES[lay.kind] == "data")


def test_single_input_concat_is_a_copy():
    class Dense(nn.Module):
        def forward(self, x):
            return torch.cat([x], 1)

    (lay,) = imported(Dense(), torch.randn(1, 4, 3, 3)).network.layers
    assert lay.kind == "concat" and lay.output_shape == (4, 3, 3)


def test_unknown_operation_is_an_error_naming_it_its_node_and_shapes():
    class Shuffle(nn.Module):
        def forward(self, x):
            return F.pixel_shuffle(x, 2)

    with pytest.raises(InputError, match=r"pixel_shuffle at 'pixel_shuffle'.*\(8, 4, 4\).*\(2, 8, 8\)"):
        from_torch(Shuffle(), torch.randn(1, 8, 4, 4))

    class Recurrent(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(8, 8, batch_first=True)

        def forward(self, x):
            return self.lstm(x)[0]

    with pytest.raises(InputError, match="LSTM at 'lstm'.*has weights"):
        from_torch(Recurrent(), torch.randn(1, 5, 8))


def test_an_operation_on_the_batch_dimension_is_refused():
    class Mix(nn.Module):
        def forward(self, x):
            return x.permute(1, 0, 2).softmax(-1)

    with pytest.raises(InputError, match="batch at dimension 1"):
        from_torch(Mix(), torch.randn(2, 3, 4))

    class Merge(nn.Module):
        def forward(self, x):
            return x.reshape(-1, 4)

    with pytest.raises(InputError, match="merges or splits the batch"):
        from_torch(Merge(), torch.randn(2, 3, 4))


def test_batch_moved_by_a_permute_is_followed_to_its_place():
    net = imported(TimmAttention(), TOKENS).network
    assert net["permute"].output_shape == (3, 4, 16, 16)            # torch's (3, B, 4, 16, 16)
    assert [net[f"unbind.{i}"].output_shape for i in range(3)] == [(4, 16, 16)] * 3
    assert net["scaled_dot_product_attention.scores"].macs == 4 * 16 * 16 * 16


# -- the operators themselves ----------------------------------------------------------


def test_matmul_broadcasts_like_torch():
    for a, b in [((4, 5, 6), (6, 7)), ((2, 1, 5, 6), (3, 6, 2)), ((6,), (6, 3)), ((4, 6), (6,))]:
        want = tuple(torch.matmul(torch.zeros(a), torch.zeros(b)).shape)
        out = O.MatMul().output_shape([a, b])
        assert out == want
        assert O.MatMul().macs([a, b], out) == math.prod(want) * a[-1]
    with pytest.raises(ShapeError, match="inner sizes differ"):
        O.MatMul().output_shape([(4, 5), (6, 7)])


def test_adaptive_pool_and_dilated_conv_sizes_match_torch():
    for h, out in [(7, 7), (13, 5), (6, 4), (224, 3)]:
        x = torch.zeros(1, 2, h, h)
        op = O.AdaptivePool2d("avg", out)
        assert op.output_shape([(2, h, h)]) == tuple(F.adaptive_avg_pool2d(x, out).shape[1:])
    for k, d, s, p in [(3, 2, 1, 2), (5, 3, 2, 1), (2, 4, 1, 0)]:
        conv = nn.Conv2d(2, 3, k, s, p, d)
        want = tuple(conv(torch.zeros(1, 2, 17, 17)).shape[1:])
        assert O.Conv2d(3, k, s, p, dilation=d).output_shape([(2, 17, 17)]) == want


def test_data_movement_operators():
    assert O.Reshape((-1, 4)).output_shape([(2, 3, 4)]) == (6, 4)
    assert O.Permute((2, 0, 1)).output_shape([(2, 3, 4)]) == (4, 2, 3)
    assert O.Slice(1, None, None, 2).output_shape([(2, 5)]) == (2, 3)
    assert O.Select(0, -1).output_shape([(3, 4)]) == (4,)
    assert O.Concat(1).output_shape([(2, 3), (2, 5)]) == (2, 8)
    assert O.Elementwise("mul").output_shape([(16, 1, 1), (16, 7, 7)]) == (16, 7, 7)
    assert O.Expand((4, 3)).output_shape([(1, 3)]) == (4, 3)
    assert O.ChannelShuffle(2).output_shape([(4, 3, 3)]) == (4, 3, 3)
    for op, shapes, msg in [(O.Reshape((5,)), [(2, 3)], "cannot reshape"),
                            (O.Permute((0, 0)), [(2, 3)], "not an order"),
                            (O.Slice(0, 5, 9), [(3,)], "empty"),
                            (O.Elementwise("add"), [(3, 2), (4, 2)], "do not broadcast"),
                            (O.Concat(1), [(2, 3), (3, 3)], "equal sizes"),
                            (O.LayerNorm(8), [(4, 6)], "ending in")]:
        with pytest.raises(ShapeError, match=msg):
            op.output_shape(shapes)
    for op, shapes in [(O.Reshape((6,)), [(2, 3)]), (O.Permute((1, 0)), [(2, 3)]), (O.Slice(0, 1), [(3,)])]:
        out = op.output_shape(shapes)
        assert (op.params(shapes), op.macs(shapes, out), op.weight_shape(shapes)) == (0, 0, None)


def test_token_linear_and_norms_count_like_torch():
    shapes = [(7, 5, 32)]
    fc = O.TokenLinear(16)
    assert fc.output_shape(shapes) == (7, 5, 16) and fc.tokens(shapes) == 35
    assert fc.params(shapes) == sum(p.numel() for p in nn.Linear(32, 16).parameters())
    assert O.LayerNorm((5, 32)).params(shapes) == sum(p.numel() for p in nn.LayerNorm((5, 32)).parameters())
    assert O.GroupNorm(7).params(shapes) == sum(p.numel() for p in nn.GroupNorm(7, 7).parameters())
    assert O.Constant((3, 4)).params([]) == 12 and O.Constant((3, 4), learned=False).params([]) == 0


def test_builder_conv1d_split_and_chunk():
    b = NetworkBuilder("t", (6, 10))
    y = b.conv1d("c", b.input, 4, 3, padding=1)
    parts = b.chunk("ch", y, 3, axis=0)
    assert [b.shape(p) for p in parts] == [(2, 10), (2, 10)]
    net = b.build()
    assert net["c"].macs == 4 * 10 * 6 * 3 and net["c"].weight_shape == (4, 6, 1, 3)
    assert np.isclose(net.macs, 720)
