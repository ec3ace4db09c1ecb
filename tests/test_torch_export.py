"""Saving a pruned torch model (state_dict) and exporting it to ONNX, then importing the
ONNX file back into hwprune with the MACs and parameter counts from_torch gives
(hwprune.workload.torch_export; issue 20 item 5)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from hwprune.errors import InputError
from hwprune.workload import torch_export as tx

torch = pytest.importorskip("torch")
prune = pytest.importorskip("torch.nn.utils.prune")


class SmallCNN(torch.nn.Module):
    """conv/bn/relu/pool twice, then flatten and two linear layers; ``c1``/``c2``/``f1``
    units per layer (the compacted model is the same class with fewer)."""

    def __init__(self, c1=4, c2=6, f1=8):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, c1, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(c1)
        self.conv2 = torch.nn.Conv2d(c1, c2, 3, padding=1)
        self.bn2 = torch.nn.BatchNorm2d(c2)
        self.pool1 = torch.nn.MaxPool2d(2)
        self.pool2 = torch.nn.MaxPool2d(2)   # from_torch names layers by module: one each
        self.fc1 = torch.nn.Linear(c2 * 2 * 2, f1)
        self.fc2 = torch.nn.Linear(f1, 3)

    def forward(self, x):
        x = self.pool1(torch.relu(self.bn1(self.conv1(x))))
        x = self.pool2(torch.relu(self.bn2(self.conv2(x))))
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


def randomise_batchnorms(net, seed):
    """Trained-like batch-norm statistics and affine values (a fresh model has unit scales
    and zero shifts everywhere)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in net.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                n = mod.num_features
                mod.weight.copy_(torch.rand(n, generator=g) + 0.5)
                mod.bias.copy_(torch.randn(n, generator=g))
                mod.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                mod.running_var.copy_(torch.rand(n, generator=g) + 0.5)
    return net


DROP1 = [1]          # conv1 output channel removed (node pruning)
DROP_FC1 = [2, 5]    # fc1 units removed


def masked_model(seed=0, fresh=False):
    """A SmallCNN with torch.nn.utils.prune masks: conv1 unit 1 and fc1 units 2 and 5
    removed (weights, and bn1's scale and shift, so they output zero), and half of conv2's
    weights pruned fine-grained."""
    torch.manual_seed(seed)
    net = SmallCNN().eval()
    if not fresh:
        randomise_batchnorms(net, seed)
    unit1 = torch.ones(4, dtype=torch.bool)
    unit1[DROP1] = False
    prune.custom_from_mask(net.conv1, "weight", unit1[:, None, None, None].expand_as(net.conv1.weight))
    prune.custom_from_mask(net.bn1, "weight", unit1)
    prune.custom_from_mask(net.bn1, "bias", unit1)
    fc_units = torch.ones(8, dtype=torch.bool)
    fc_units[DROP_FC1] = False
    prune.custom_from_mask(net.fc1, "weight", fc_units[:, None].expand_as(net.fc1.weight))
    prune.custom_from_mask(net.fc1, "bias", fc_units)
    prune.l1_unstructured(net.conv2, "weight", amount=0.5)
    return net


def compacted_by_hand(masked):
    """The masked model physically smaller: conv1/bn1 without channel 1 and conv2 without
    that input channel; fc1 without units 2 and 5 and fc2 without those inputs."""
    full = tx.permanent_copy(masked)
    keep1 = [c for c in range(4) if c not in DROP1]
    keep_fc = [u for u in range(8) if u not in DROP_FC1]
    small = SmallCNN(c1=len(keep1), f1=len(keep_fc)).eval()
    with torch.no_grad():
        small.conv1.weight.copy_(full.conv1.weight[keep1])
        for attr in ("weight", "bias", "running_mean", "running_var"):
            getattr(small.bn1, attr).copy_(getattr(full.bn1, attr)[keep1])
        small.conv2.weight.copy_(full.conv2.weight[:, keep1])
        small.conv2.bias.copy_(full.conv2.bias)
        small.bn2.load_state_dict(full.bn2.state_dict())
        small.fc1.weight.copy_(full.fc1.weight[keep_fc])
        small.fc1.bias.copy_(full.fc1.bias[keep_fc])
        small.fc2.weight.copy_(full.fc2.weight[:, keep_fc])
        small.fc2.bias.copy_(full.fc2.bias)
    return small


X = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(5))


def test_masked_and_compacted_models_agree():
    masked = masked_model()
    with torch.no_grad():
        assert torch.allclose(masked(X), compacted_by_hand(masked)(X), atol=1e-5)


# -------------------------------------------------------------------- state_dict

def test_masked_state_dict_has_plain_keys_and_reloads(tmp_path):
    masked = masked_model()
    path = tx.save_state_dict(masked, tmp_path / "masked.pt")
    state = torch.load(path, weights_only=True)
    assert not any(k.endswith(("_orig", "_mask")) for k in state)
    assert set(state) == set(SmallCNN().state_dict())
    assert (state["conv1.weight"][DROP1] == 0).all()
    assert int((state["conv2.weight"] == 0).sum()) == state["conv2.weight"].numel() // 2
    assert hasattr(masked.conv1, "weight_orig")           # the user's module keeps its masks
    fresh = SmallCNN().eval()
    fresh.load_state_dict(state)                          # plain torch loading works
    with torch.no_grad():
        assert torch.allclose(fresh(X), masked(X), atol=1e-6)
    assert [p for p in os.listdir(tmp_path)] == ["masked.pt"]   # no temporary file left


def test_compacted_state_dict_reloads_into_a_fresh_model(tmp_path):
    masked = masked_model()
    small = compacted_by_hand(masked)
    path = tx.save_state_dict(small, tmp_path / "small.pt")
    rebuilt = tx.load_state_dict(SmallCNN().eval(), path)
    assert (rebuilt.conv1.out_channels, rebuilt.bn1.num_features, rebuilt.conv2.in_channels) == (3, 3, 3)
    assert (rebuilt.fc1.out_features, rebuilt.fc2.in_features) == (6, 6)
    with torch.no_grad():
        assert torch.allclose(rebuilt(X), masked(X), atol=1e-5)


def test_load_state_dict_resizes_depthwise_convolutions(tmp_path):
    def net(c):
        return torch.nn.Sequential(torch.nn.Conv2d(1, c, 1), torch.nn.Conv2d(c, c, 3, groups=c),
                                   torch.nn.Conv2d(c, 2, 1))
    small = net(3)
    path = tx.save_state_dict(small, tmp_path / "dw.pt")
    rebuilt = tx.load_state_dict(net(5), path)
    assert (rebuilt[1].groups, rebuilt[1].in_channels, rebuilt[2].in_channels) == (3, 3, 3)
    x = torch.randn(1, 1, 6, 6)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), small(x))


def test_load_state_dict_errors(tmp_path):
    one = tx.save_state_dict(torch.nn.Sequential(torch.nn.LayerNorm(3)), tmp_path / "ln.pt")
    with pytest.raises(InputError, match="only Conv2d, Linear and BatchNorm"):
        tx.load_state_dict(torch.nn.Sequential(torch.nn.LayerNorm(4)), one)
    with pytest.raises(InputError, match="no such file"):
        tx.load_state_dict(SmallCNN(), tmp_path / "gone.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="cannot read state_dict file"):
        tx.load_state_dict(SmallCNN(), tmp_path / "junk.pt")
    other = tx.save_state_dict(torch.nn.Linear(2, 2), tmp_path / "lin.pt")
    with pytest.raises(InputError, match="does not fit SmallCNN"):
        tx.load_state_dict(SmallCNN(), other)


# -------------------------------------------------------------------------- ONNX

@pytest.fixture
def hw():
    pytest.importorskip("onnx")
    from hwprune import api
    from hwprune.workload.torch_import import from_torch
    return api, from_torch


@pytest.mark.parametrize("fresh", [False, True], ids=["trained-like", "fresh"])
def test_masked_model_exports_to_onnx_with_the_same_counts(tmp_path, hw, fresh):
    api, from_torch = hw
    masked = masked_model(fresh=fresh)
    path = tx.export_onnx(masked, X[:1], tmp_path / "masked.onnx")
    ref = from_torch(tx.permanent_copy(masked), X[:1]).network
    got = api.network(str(path))
    assert (got.macs, got.params) == (ref.macs, ref.params)
    assert [layer.macs for layer in got] == [layer.macs for layer in ref]
    check = tx.reimport_check(masked, X[:1], path)
    assert check.ok and check.macs_onnx == ref.macs and check.params_onnx == ref.params
    assert hasattr(masked.conv1, "weight_mask")           # the user's module is unchanged
    assert sorted(os.listdir(tmp_path)) == ["masked.onnx"]


def test_compacted_model_exports_to_onnx_with_the_same_counts(tmp_path, hw):
    api, from_torch = hw
    masked = masked_model()
    small = compacted_by_hand(masked)
    path = tx.export_onnx(small, X[:1], tmp_path / "small.onnx")
    ref = from_torch(small, X[:1]).network
    got = api.network(str(path))
    assert (got.macs, got.params) == (ref.macs, ref.params)
    full = from_torch(tx.permanent_copy(masked), X[:1]).network
    assert got.macs < full.macs and got.params < full.params
    assert tx.reimport_check(small, X[:1], path).ok


def test_exported_onnx_weights_are_the_pruned_weights(tmp_path, hw):
    from hwprune.workload.onnx_import import load_onnx
    masked = masked_model()
    path = tx.export_onnx(masked, X[:1], tmp_path / "m.onnx")
    imported = load_onnx(path)
    conv1 = next(w for layer, w in imported.weights.items() if "conv1" in str(layer))
    assert np.all(conv1[DROP1] == 0)
    assert np.any(conv1[[0, 2, 3]] != 0)


def test_reimport_check_reports_a_difference(tmp_path, hw):
    path = tx.export_onnx(SmallCNN().eval(), X[:1], tmp_path / "m.onnx")
    other = compacted_by_hand(masked_model())
    result = tx.reimport_check(other, X[:1], path, strict=False)
    assert not result.ok
    from hwprune.errors import HwpruneError
    with pytest.raises(HwpruneError, match="imports back with"):
        tx.reimport_check(other, X[:1], path)


# ------------------------------------------------------------------------ errors

def test_output_path_is_checked_before_work(tmp_path):
    net = SmallCNN()
    with pytest.raises(InputError, match="does not exist"):
        tx.export_onnx(net, X[:1], tmp_path / "missing" / "m.onnx")
    with pytest.raises(InputError, match="is a directory|give a file name"):
        tx.save_state_dict(net, tmp_path)
    with pytest.raises(InputError, match="must be a file path"):
        tx.save_state_dict(net, 3)


def test_failed_export_leaves_no_file(tmp_path):
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("cannot run")

    with pytest.raises(InputError, match="torch.onnx.export cannot export Broken: .*cannot run"):
        tx.export_onnx(Broken(), X[:1], tmp_path / "b.onnx")
    assert os.listdir(tmp_path) == []
    with pytest.raises(InputError, match="example_input must be a torch.Tensor"):
        tx.export_onnx(SmallCNN(), [1], tmp_path / "b.onnx")


def test_existing_file_is_replaced(tmp_path):
    target = tmp_path / "m.pt"
    target.write_text("old")
    tx.save_state_dict(SmallCNN(), target)
    assert isinstance(torch.load(target, weights_only=True), dict)


def test_bytes_for_the_clis_own_writer_and_training_mode_kept(tmp_path, hw):
    from hwprune.report.output import write_atomic
    api, from_torch = hw
    net = masked_model().train()
    write_atomic(tmp_path / "m.onnx", tx.onnx_bytes(net, X[:1]))
    write_atomic(tmp_path / "m.pt", tx.state_dict_bytes(net))
    assert net.training                                   # the user's module stays as it was
    ref = from_torch(tx.permanent_copy(net), X[:1]).network
    assert api.network(str(tmp_path / "m.onnx")).params == ref.params
    assert set(torch.load(tmp_path / "m.pt", weights_only=True)) == set(SmallCNN().state_dict())


def test_temporary_files_are_named_as_hwprunes_cleanup_expects(tmp_path, monkeypatch):
    from hwprune.report.output import is_own_temp
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append(os.path.basename(src))
        real_replace(src, dst)

    monkeypatch.setattr(tx.os, "replace", spy)
    tx.save_state_dict(SmallCNN(), tmp_path / "m.pt")
    assert len(seen) == 1 and is_own_temp(seen[0]), seen
