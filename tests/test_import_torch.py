"""PyTorch import via torch.fx, masks back into torch, physically smaller node-pruned modules."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from hwprune.errors import InputError  # noqa: E402
from hwprune.prune import granularity as G  # noqa: E402
from hwprune.workload.imported import ImportWarning_  # noqa: E402
from hwprune.workload.torch_import import apply_masks, compact, from_torch  # noqa: E402


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(8, 6, 3, padding=1)
        self.fc1 = nn.Linear(6 * 4 * 4, 20)
        self.fc2 = nn.Linear(20, 5)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(x))
        x = torch.relu(x + y)                       # residual
        x = self.pool(x)
        x = torch.relu(self.conv3(x))
        x = torch.flatten(x, 1)
        return self.fc2(torch.relu(self.fc1(x)))


def _model(seed=0):
    torch.manual_seed(seed)
    m = Small()
    with torch.no_grad():
        for bn in (m.bn1, m.bn2):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
    return m.eval()


X = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))


def test_layers_in_execution_order_with_shapes_and_weights():
    m = _model()
    imp = from_torch(m, X)
    net = imp.network
    assert [lay.name for lay in net.weighted_layers] == ["conv1", "conv2", "conv3", "fc1", "fc2"]
    layers = {lay.name: lay for lay in net.layers}
    add = [lay for lay in net.layers if lay.kind == "add"][0]
    assert set(add.inputs) == {"conv1", "conv2"}                # bn and relu folded/passed
    assert layers["conv3"].output_shape == (6, 4, 4)
    assert layers["fc1"].macs == 96 * 20
    np.testing.assert_allclose(imp.weights["fc2"], m.fc2.weight.detach().numpy())


def test_folded_batch_norm_reproduces_the_module():
    m = _model()
    imp = from_torch(m, X)
    conv = nn.Conv2d(3, 8, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(torch.as_tensor(imp.weights["conv1"]))
        conv.bias.copy_(torch.as_tensor(imp.biases["conv1"]))
        np.testing.assert_allclose(conv(X).numpy(), m.bn1(m.conv1(X)).numpy(), rtol=1e-4, atol=1e-5)


def test_unsupported_module_with_parameters_is_an_error_and_without_is_skipped():
    class WithPRelu(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.act = nn.PReLU()

        def forward(self, x):
            return self.act(self.fc(x))

    with pytest.raises(InputError, match="PReLU at 'act'"):
        from_torch(WithPRelu(), torch.randn(1, 4))

    class WithCustom(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return torch.erf(self.fc(x))

    with pytest.warns(ImportWarning_, match="erf"):
        imp = from_torch(WithCustom(), torch.randn(1, 4))
    assert len(imp.skipped) == 1


def _node_masks(m, units):
    """Masks removing ``units`` (per layer) and the next layer's inputs that read them."""
    masks = {}
    for name, keep in units.items():
        w = m.get_submodule(name).weight
        masks[name] = np.broadcast_to(keep.reshape(-1, *([1] * (w.dim() - 1))), tuple(w.shape)).copy()
    return masks


def test_masks_go_back_with_custom_from_mask_and_compact_matches_the_masked_model():
    m = _model()
    keep3 = np.array([True, False, True, True, False, True])
    keepf = np.zeros(20, bool)
    keepf[::3] = True
    masks = _node_masks(m, {"conv3": keep3, "fc1": keepf})
    masks["fc1"] = masks["fc1"] & np.repeat(keep3, 16)[None, :]      # inputs of removed channels
    masked = _model()
    apply_masks(masked, masks, X)
    assert hasattr(masked.conv3, "weight_mask")
    assert masked.conv3.weight[1].abs().sum() == 0
    small = compact(masked, {"conv3": keep3, "fc1": keepf}, X)
    assert small.conv3.out_channels == 4 and small.fc1.in_features == 64
    assert small.fc1.out_features == 7 and small.fc2.in_features == 7
    with torch.no_grad():
        np.testing.assert_allclose(small(X).numpy(), masked(X).numpy(), rtol=1e-4, atol=1e-5)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in _model().parameters())


def test_compact_with_batch_norm_after_the_layer():
    m = _model()

    class Chain(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1, self.conv3 = m.conv1, m.bn1, nn.Conv2d(8, 4, 3)

        def forward(self, x):
            return self.conv3(torch.relu(self.bn1(self.conv1(x))))

    chain = Chain().eval()
    keep = np.array([1, 0, 1, 1, 0, 0, 1, 1], bool)
    masked = Chain().eval()
    masked.load_state_dict(chain.state_dict())
    apply_masks(masked, _node_masks(masked, {"conv1": keep}), X)
    small = compact(masked, {"conv1": keep}, X)
    assert small.bn1.num_features == 5 and small.conv3.in_channels == 5
    with torch.no_grad():
        np.testing.assert_allclose(small(X).numpy(), masked(X).numpy(), rtol=1e-4, atol=1e-5)


def test_compact_shrinks_a_layer_feeding_a_residual_add_with_its_partner():
    keep = np.array([1, 0, 1, 1, 0, 1, 1, 0], bool)
    masked = _model()
    apply_masks(masked, _node_masks(masked, {"conv1": keep, "conv2": keep}), X)
    small = compact(masked, {"conv1": keep}, X)
    assert small.conv1.out_channels == small.conv2.out_channels == small.conv2.in_channels \
        == small.conv3.in_channels == 5
    with torch.no_grad():
        np.testing.assert_allclose(small(X).numpy(), masked(X).numpy(), rtol=1e-4, atol=1e-5)


def test_masks_from_hwprune_granularities_fit_the_imported_weights():
    imp = from_torch(_model(), X)
    w = imp.weights["conv2"]
    groups = G.groups_of(w.shape, "kernel")
    keep = G.select(np.abs(w).reshape(groups.count, -1).sum(axis=1), groups.sizes, 0.5)
    mask = G.to_mask(groups, keep)
    m = _model()
    apply_masks(m, {"conv2": mask}, X)
    assert float(m.conv2.weight_mask.float().mean()) == pytest.approx(0.5)
    with pytest.raises(InputError, match="does not match"):
        apply_masks(m, {"fc2": mask}, X)


def test_resnet18_example_runs_reduced_and_matches_the_builtin_network(capsys, tmp_path, monkeypatch):
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parents[1] / "examples" / "resnet18_torch.py"
    spec = importlib.util.spec_from_file_location("resnet18_torch", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert example.main(["--small"]) == 0
    out = capsys.readouterr().out
    assert "energy per layer on eyeriss" in out and out.count("recommended granularity") == 2
    # --prune --small: trained on the offline digits, Scalpel per device, the trade-off files
    pytest.importorskip("sklearn")
    from hwprune.studies import energy_aware as EA
    from hwprune.studies import tradeoff as T

    monkeypatch.setattr(T, "DENSITIES", (0.25,))          # one point per policy, one per budget
    monkeypatch.setattr(T, "TOLERANCES", (0.01,))
    monkeypatch.setattr(T, "BUDGETS", (0.02,))
    monkeypatch.setattr(EA, "DENSITY_GRID", (0.5, 0.25))
    assert example.main(["--prune", "--small", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    for dev in ("cortex-m4", "titan-x"):
        assert f"Scalpel's choice on {dev}" in out
        assert (tmp_path / "out" / f"tradeoff-{dev}.png").stat().st_size > 0
    assert "Scalpel vs traditional" in out and "offline digits test set" in out
    points = __import__("pandas").read_csv(tmp_path / "out" / "tradeoff.csv")
    assert set(points["device"]) == {"cortex-m4", "titan-x"}
    assert {"scalpel", "energy-aware", "node", "filter"} <= set(points["policy"])
    assert points[["accuracy", "energy", "latency_s", "model_bytes"]].notna().all().all()
    import hwprune
    torch.manual_seed(0)
    net = from_torch(example.ResNet18().eval(), torch.randn(1, 3, 224, 224)).network
    zoo = hwprune.network("resnet18")
    assert net.macs == zoo.macs
    assert len(net.weighted_layers) == len(zoo.weighted_layers)
