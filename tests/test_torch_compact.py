"""Node pruning through coupled layers: residual adds, concats, depthwise convolutions
and batch norms (hwprune.workload.torch_groups, via torch_import.compact)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")
nn = torch.nn

from hwprune.errors import InputError  # noqa: E402
from hwprune.workload.torch_import import apply_masks, compact, coupled_groups, from_torch  # noqa: E402

# -- small models written out (torchvision's wheels need a newer or a CUDA torch here) --

class Block(nn.Module):
    """ResNet basic block: conv-bn-relu-conv-bn, plus the input or a 1x1 downsample."""

    def __init__(self, cin, mid, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, mid, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNetLike(nn.Module):
    """A two-stage ResNet-18-like network: stem, two blocks per stage, a downsample."""

    def __init__(self, c1=8, c2=16, mids=(8, 8, 16, 16), classes=5):
        super().__init__()
        self.conv1 = nn.Conv2d(3, c1, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c1)
        self.layer1 = nn.Sequential(Block(c1, mids[0], c1), Block(c1, mids[1], c1))
        self.layer2 = nn.Sequential(Block(c1, mids[2], c2, 2), Block(c2, mids[3], c2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c2, classes)

    def forward(self, x):
        x = self.layer2(self.layer1(torch.relu(self.bn1(self.conv1(x)))))
        return self.fc(torch.flatten(self.pool(x), 1))


class Inverted(nn.Module):
    """MobileNetV2 inverted residual: [1x1 expand-bn-relu6] 3x3 depthwise-bn-relu6,
    1x1 project-bn, plus the input when the shapes allow."""

    def __init__(self, cin, mid, cout, stride=1, expand=True):
        super().__init__()
        self.expand = nn.Sequential(nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid),
                                    nn.ReLU6()) if expand else None
        self.dw = nn.Sequential(nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False),
                                nn.BatchNorm2d(mid), nn.ReLU6())
        self.project = nn.Sequential(nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.project(self.dw(x if self.expand is None else self.expand(x)))
        return x + y if self.residual else y


class MobileNetV2Like(nn.Module):
    def __init__(self, c0=8, c1=10, m2=24, c2=12, m3=32, head=20, classes=5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c0, 3, 2, 1, bias=False), nn.BatchNorm2d(c0), nn.ReLU6())
        self.b1 = Inverted(c0, c0, c1, expand=False)          # t = 1: depthwise right after the stem
        self.b2 = Inverted(c1, m2, c2, stride=2)
        self.b3 = Inverted(c2, m3, c2)                         # residual
        self.head = nn.Sequential(nn.Conv2d(c2, head, 1, bias=False), nn.BatchNorm2d(head), nn.ReLU6())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(head, classes)

    def forward(self, x):
        x = self.head(self.b3(self.b2(self.b1(self.stem(x)))))
        return self.classifier(torch.flatten(self.pool(x), 1))


class Concat(nn.Module):
    """Two branches concatenated on channels, then a conv, a flatten and a linear layer."""

    def __init__(self, a=4, b=6, c=5):
        super().__init__()
        self.a = nn.Conv2d(3, a, 3, padding=1)
        self.bn_a = nn.BatchNorm2d(a)
        self.b = nn.Conv2d(3, b, 1)
        self.c = nn.Conv2d(a + b, c, 3, padding=1)
        self.pool = nn.MaxPool2d(4)
        self.fc = nn.Linear(c * 16, 3)

    def forward(self, x):
        x = torch.cat([torch.relu(self.bn_a(self.a(x))), torch.relu(self.b(x))], dim=1)
        x = self.pool(torch.relu(self.c(x)))
        return self.fc(torch.flatten(x, 1))


def _init(m, seed=0):
    """Random weights and batch-norm statistics, in eval mode."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-1, 1)
                mod.running_var.uniform_(0.5, 2)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.5, 0.5)
    return m.eval()


def _params(m):
    return sum(p.numel() for p in m.parameters())


def _mask_groups(m, keeps, X):
    """Mask every member of each group (``keeps``: first member -> keep) with apply_masks,
    as the node-pruning policy would; returns the keep per member."""
    groups = {g[0]: g for g in coupled_groups(m, X)}
    per_layer, masks = {}, {}
    for first, keep in keeps.items():
        for name in groups[first]:
            w = m.get_submodule(name).weight
            per_layer[name] = keep
            masks[name] = np.broadcast_to(keep.reshape(-1, *([1] * (w.dim() - 1))), tuple(w.shape)).copy()
    apply_masks(m, masks, X)
    return per_layer


def _keep(n, kept):
    keep = np.zeros(n, bool)
    keep[list(kept)] = True
    return keep


def _same(a, b, X):
    with torch.no_grad():
        diff = float((a(X) - b(X)).abs().max())
    assert diff < 1e-4, diff
    return diff


X = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def test_coupled_groups_of_a_resnet_and_a_mobilenetv2():
    groups = coupled_groups(_init(ResNetLike()), X)
    assert ("conv1", "layer1.0.conv2", "layer1.1.conv2") in groups
    assert ("layer2.0.conv2", "layer2.0.downsample.0", "layer2.1.conv2") in groups
    assert ("layer1.0.conv1",) in groups and ("fc",) in groups
    assert sorted(n for g in groups for n in g) == sorted(
        n for n, mod in ResNetLike().named_modules() if isinstance(mod, (nn.Conv2d, nn.Linear)))
    groups = coupled_groups(_init(MobileNetV2Like()), X)
    assert ("stem.0", "b1.dw.0") in groups                     # depthwise follows its producer
    assert ("b2.expand.0", "b2.dw.0") in groups
    assert ("b2.project.0", "b3.project.0") in groups          # residual add
    assert ("b1.project.0",) in groups and ("head.0",) in groups
    prunable = coupled_groups(_init(MobileNetV2Like()), X, prunable_only=True)
    assert prunable == [g for g in groups if g != ("classifier",)]


def test_resnet_residual_and_downsample_groups_compact_and_match_the_masked_model():
    keep_a, keep_b = _keep(8, [0, 2, 3, 6, 7]), _keep(16, range(0, 16, 2))
    keep_in = _keep(8, [1, 4, 5])
    masked = _init(ResNetLike())
    _mask_groups(masked, {"conv1": keep_a, "layer2.0.conv2": keep_b, "layer1.0.conv1": keep_in}, X)
    # One member per group is enough: the others follow.
    small = compact(masked, {"layer1.0.conv2": keep_a, "layer2.0.downsample.0": keep_b,
                             "layer1.0.conv1": keep_in}, X)
    assert small.conv1.out_channels == small.bn1.num_features == 5
    assert small.layer1[1].conv2.out_channels == 5 and small.layer2[0].conv1.in_channels == 5
    assert small.layer2[0].downsample[0].out_channels == small.layer2[1].conv2.out_channels == 8
    assert small.fc.in_features == 8 and small.layer1[0].conv2.in_channels == 3
    _same(small, masked, X)
    expected = _init(ResNetLike(c1=5, c2=8, mids=(3, 8, 16, 16)))
    assert _params(small) == _params(expected) < _params(ResNetLike())
    assert from_torch(small, X).network.macs == from_torch(expected, X).network.macs


def test_mobilenetv2_depthwise_follows_its_producer_and_matches_the_masked_model():
    masked = _init(MobileNetV2Like())
    keeps = {"stem.0": _keep(8, [0, 1, 5]), "b2.expand.0": _keep(24, range(0, 24, 3)),
             "b2.project.0": _keep(12, range(7)), "b3.expand.0": _keep(32, range(1, 32, 2)),
             "head.0": _keep(20, range(10)), "b1.project.0": _keep(10, [2, 3, 4, 7])}
    _mask_groups(masked, keeps, X)
    small = compact(masked, keeps, X)
    assert small.b1.dw[0].out_channels == small.b1.dw[0].groups == 3 == small.b1.dw[1].num_features
    assert small.b2.dw[0].groups == 8 and small.b3.project[0].out_channels == 7
    assert small.classifier.in_features == 10
    _same(small, masked, X)
    expected = _init(MobileNetV2Like(c0=3, c1=4, m2=8, c2=7, m3=16, head=10))
    assert _params(small) == _params(expected) < _params(MobileNetV2Like())
    assert from_torch(small, X).network.macs == from_torch(expected, X).network.macs


def test_concat_inputs_are_compacted_into_their_slices_of_the_reader():
    masked = _init(Concat())
    keeps = {"a": _keep(4, [1, 3]), "b": _keep(6, [0, 2, 5]), "c": _keep(5, [0, 4])}
    assert coupled_groups(masked, X) == [("a",), ("b",), ("c",), ("fc",)]
    _mask_groups(masked, keeps, X)
    small = compact(masked, keeps, X)
    assert small.c.in_channels == 5 and small.bn_a.num_features == 2 and small.fc.in_features == 32
    _same(small, masked, X)
    expected = _init(Concat(2, 3, 2))
    assert _params(small) == _params(expected)
    assert from_torch(small, X).network.macs == from_torch(expected, X).network.macs


def test_round_to_adds_back_the_strongest_removed_units():
    masked = _init(ResNetLike(c2=16))
    keep = _keep(16, [0, 1, 2, 3, 4])
    _mask_groups(masked, {"layer2.0.conv2": keep}, X)
    small = compact(masked, {"layer2.0.conv2": keep}, X, round_to=4)
    assert small.layer2[0].conv2.out_channels == small.fc.in_features == 8
    _same(small, masked, X)                 # the units added back were masked: they output zero
    plain = compact(masked, {"layer2.0.conv2": keep}, X)
    assert plain.layer2[0].conv2.out_channels == 5
    # Unmasked: the added units are the three of largest summed L1 norm over the group.
    m = _init(ResNetLike())
    group = ("layer2.0.conv2", "layer2.0.downsample.0", "layer2.1.conv2")
    score = sum(m.get_submodule(n).weight.detach().abs().reshape(16, -1).sum(1).numpy() for n in group)
    extra = sorted(np.argsort(-score[5:])[:3] + 5)
    rounded = compact(m, {"layer2.0.conv2": keep}, X, round_to=4)
    np.testing.assert_array_equal(rounded.fc.weight.detach().numpy(),
                                  m.fc.weight.detach().numpy()[:, [0, 1, 2, 3, 4, *extra]])
    # Never above the layer's units; 1 changes nothing.
    assert compact(m, {"layer2.0.conv2": keep}, X, round_to=12).fc.in_features == 12
    assert compact(m, {"layer2.0.conv2": keep}, X, round_to=32).fc.in_features == 16
    assert compact(m, {"layer2.0.conv2": keep}, X, round_to=1).fc.in_features == 5


def test_union_of_the_members_keeps_decides_the_group():
    m = _init(ResNetLike())
    small = compact(m, {"conv1": _keep(8, [0, 1]), "layer1.1.conv2": _keep(8, [1, 5])}, X)
    assert small.layer1[0].conv2.out_channels == 3
    np.testing.assert_array_equal(small.conv1.weight.detach().numpy(),
                                  m.conv1.weight.detach().numpy()[[0, 1, 5]])


def test_compact_leaves_the_original_and_its_masks_alone():
    masked = _init(ResNetLike())
    _mask_groups(masked, {"conv1": _keep(8, [0, 1])}, X)
    before = masked(X).detach().clone()
    compact(masked, {"conv1": _keep(8, [0, 1])}, X)
    assert hasattr(masked.conv1, "weight_mask") and masked.conv1.out_channels == 8
    torch.testing.assert_close(masked(X), before)


def test_errors_name_the_layer_and_the_reason():
    m = _init(ResNetLike())
    with pytest.raises(InputError, match="conv1: keep_units needs one bool per output unit, 8"):
        compact(m, {"conv1": np.ones(7, bool)}, X)
    with pytest.raises(InputError, match="'layer9.conv' is not a conv or linear layer.*accepted: conv1"):
        compact(m, {"layer9.conv": np.ones(8, bool)}, X)
    with pytest.raises(InputError, match="'bn1' is not a conv or linear layer"):
        compact(m, {"bn1": np.ones(8, bool)}, X)
    with pytest.raises(InputError, match="fc: its units cannot be removed: fc is an output layer"):
        compact(m, {"fc": _keep(5, [0, 1])}, X)
    with pytest.raises(InputError, match="keeps no unit"):
        compact(m, {"layer1.0.conv1": np.zeros(8, bool)}, X)
    for bad in (0, -4, 2.5, True, "8"):
        with pytest.raises(InputError, match="round_to must be a positive whole number"):
            compact(m, {"conv1": np.ones(8, bool)}, X, round_to=bad)
    with pytest.raises(InputError, match="keep_units must map"):
        compact(m, [np.ones(8, bool)], X)
    with pytest.raises(InputError, match="example_input must be a torch.Tensor"):
        compact(m, {"conv1": np.ones(8, bool)}, None)
    assert compact(m, {"fc": np.ones(5, bool)}, X).fc.out_features == 5     # keeping all is fine


def test_output_layer_coupled_through_a_residual_add_keeps_its_units():
    class OutAdd(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            return self.a(x) + self.b(x)

    with pytest.raises(InputError, match="a: its units cannot be removed: a is an output layer.*coupled"):
        compact(OutAdd(), {"b": _keep(4, [0])}, X)


def test_a_grouped_convolution_that_is_not_depthwise_is_refused_by_name():
    class Grouped(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.c = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 2, 1)
            self.g = nn.Conv2d(8, 8, 3, padding=1, groups=2)

        def forward(self, x):
            return self.c(self.g(self.a(x)))

    with pytest.raises(InputError, match="a: its units cannot be removed: g is a grouped convolution"):
        compact(Grouped(), {"a": _keep(8, [0, 1])}, X)
    assert compact(Grouped(), {"g": _keep(8, range(8))}, X).g.out_channels == 8


def test_a_missing_torch_pruning_names_the_extra(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name == "torch_pruning":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(InputError, match=r"torch-pruning: pip install 'hwprune\[torch\]'"):
        coupled_groups(_init(ResNetLike()), X)
