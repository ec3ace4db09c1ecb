"""The torch model adapter: the pruning policies on a torch module, one code path with the
numpy reference models (issue 20, item 1)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from torch_twins import CNN, EXAMPLE, torch_copy  # noqa: E402

from hwprune import api  # noqa: E402
from hwprune.errors import InputError  # noqa: E402
from hwprune.prune import models  # noqa: E402
from hwprune.prune.data import digits  # noqa: E402
from hwprune.prune.schedules import prune as schedule_prune  # noqa: E402
from hwprune.prune.torch_model import TorchAdapter  # noqa: E402


class MLP(nn.Module):
    """digits-mlp's architecture in torch."""

    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1, self.fc2, self.fc3 = nn.Linear(64, 300), nn.Linear(300, 100), nn.Linear(100, 10)

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(self.flatten(x))))))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        y = torch.relu(self.conv1(x))
        return self.fc(torch.flatten(torch.relu(y + self.conv2(y)), 1))


@pytest.fixture(scope="module")
def loaders():
    d = digits(0)
    tr = torch.utils.data.TensorDataset(torch.tensor(d.x_train[:512]), torch.tensor(d.y_train[:512]))
    te = torch.utils.data.TensorDataset(torch.tensor(d.x_test), torch.tensor(d.y_test))
    return (torch.utils.data.DataLoader(tr, batch_size=64, shuffle=True),
            torch.utils.data.DataLoader(te, batch_size=256))


def _cnn(seed=0):
    torch.manual_seed(seed)
    return CNN()


def test_masks_are_torch_prune_masks_and_training_keeps_pruned_weights_zero(loaders):
    from torch.nn.utils import prune

    module = _cnn()
    adapter = TorchAdapter(module, EXAMPLE, loaders=loaders)
    result = api.prune(adapter, "magnitude", "fine", 0.3, "oneshot", epochs=1)
    for name in ("conv1", "conv2", "fc1", "fc2", "fc3"):
        mod = module.get_submodule(name)
        assert prune.is_pruned(mod) and hasattr(mod, "weight_orig") and hasattr(mod, "weight_mask")
        assert any(isinstance(h, prune.BasePruningMethod) for h in mod._forward_pre_hooks.values())
        mask = mod.weight_mask.bool()
        assert 0.25 < mask.float().mean() < 0.35
        assert torch.all(mod.weight[~mask] == 0)
    assert result.model is module and result.adapter is adapter
    # one more plain gradient step of the user's own: the pruned weights get no gradient
    opt = torch.optim.SGD(module.parameters(), lr=0.1)
    x, y = next(iter(loaders[0]))
    nn.functional.cross_entropy(module(x), y).backward()
    assert torch.all(module.fc1.weight_orig.grad[~module.fc1.weight_mask.bool()] == 0)
    opt.step()
    module(x)
    for name in ("conv1", "fc1"):
        mod = module.get_submodule(name)
        assert torch.all(mod.weight[~mod.weight_mask.bool()] == 0)


@pytest.mark.parametrize("schedule, granularity, group", [
    ("iterative", "fine", None), ("agp", "fine", None), ("agp", "simd", 4), ("oneshot", "vector", None)])
def test_schedules_reach_the_target_density_per_layer_within_one_group(loaders, schedule, granularity,
                                                                       group):
    adapter = TorchAdapter(_cnn(), EXAMPLE, loaders=loaders)
    result = api.prune(adapter, "magnitude", granularity, 0.2, schedule, group, epochs=2)
    width = {"fine": 1, "simd": 4, "vector": 3}[granularity]
    for row in result.layers.itertuples():
        assert abs(row.kept - 0.2 * row.weights) <= width, row
    assert 0 <= result.accuracy_after <= 1 and 0 <= result.accuracy_before <= 1


def test_node_pruning_masks_the_inputs_of_the_consumers(loaders):
    module = _cnn()
    adapter = TorchAdapter(module, EXAMPLE, evaluate=lambda m: 0.5)
    api.prune(adapter, "magnitude", "node", 0.5, "oneshot", epochs=0)
    conv1_units = module.conv1.weight_mask.reshape(6, -1).any(dim=1)
    assert 0 < int(conv1_units.sum()) < 6
    # conv2 reads none of conv1's removed channels
    assert not module.conv2.weight_mask[:, ~conv1_units].any()
    # fc1 (after pool and flatten, 4 positions per channel) reads none of conv2's removed ones
    conv2_units = module.conv2.weight_mask.reshape(16, -1).any(dim=1)
    reads = module.fc1.weight_mask.reshape(120, 16, 4).any(dim=(0, 2))
    assert not reads[~conv2_units].any() and reads[conv2_units].all()
    assert module.fc3.weight_mask.any(dim=1).all()     # the classes stay
    # a removed unit outputs zero: its bias is masked too
    assert torch.all(module.conv1.bias[~conv1_units] == 0)


@pytest.mark.parametrize("name, make", [("digits-cnn", CNN), ("digits-mlp", MLP)])
@pytest.mark.parametrize("granularity, group", [("fine", None), ("simd", 4), ("vector", None),
                                                 ("kernel", None), ("filter", None), ("node", None)])
def test_numpy_and_torch_adapters_give_the_same_masks(name, make, granularity, group):
    """One code path: the same weights and criterion give the same masks on both kinds."""
    model, data = models.build(name, 3), digits(0)
    module = torch_copy(model, make())
    a = schedule_prune(model, data, "magnitude", granularity, 0.3, "oneshot", group, epochs=0)
    b = schedule_prune(TorchAdapter(module, EXAMPLE, evaluate=lambda m: 1.0), None, "magnitude",
                       granularity, 0.3, "oneshot", group, epochs=0)
    for lay in model.prunable():
        np.testing.assert_array_equal(lay.mask, module.get_submodule(lay.name).weight_mask.bool().numpy(),
                                      err_msg=lay.name)
    assert a.layers.drop(columns="q").equals(b.layers.drop(columns="q"))
    np.testing.assert_allclose(a.layers.q, b.layers.q, rtol=1e-5)


@pytest.mark.parametrize("criterion", ["taylor", "apoz", "obd", "activation"])
def test_data_driven_criteria_run_on_torch(loaders, criterion):
    adapter = TorchAdapter(_cnn(), EXAMPLE, loaders=loaders)
    result = api.prune(adapter, criterion, "fine", 0.5, "oneshot", epochs=0)
    assert np.allclose(result.layers.density, 0.5, atol=0.01)


def test_statistics_match_the_numpy_model_on_the_same_batch():
    """The forward-hook statistics equal :mod:`hwprune.prune.statistics` on one batch."""
    from hwprune.prune.statistics import collect

    model, data = models.build("digits-cnn", 1), digits(0)
    module = torch_copy(model, CNN())
    idx = np.random.default_rng(5).choice(data.x_train.shape[0], size=128, replace=False)
    one = [(torch.tensor(data.x_train[idx]), torch.tensor(data.y_train[idx]))]
    torch_stats = TorchAdapter(module, EXAMPLE, loaders=(one, one)).statistics(seed=5)
    np_stats = collect(model, data, batches=1, batch_size=128, seed=5)
    for name, s in np_stats.items():
        t = torch_stats[name]
        for field in ("input_abs_mean", "input_zero_fraction", "output_mean", "output_zero_fraction",
                      "taylor", "fisher"):
            np.testing.assert_allclose(getattr(t, field), getattr(s, field), rtol=2e-3, atol=1e-6,
                                       err_msg=f"{name}.{field}")


def test_sensitivity_runs_on_torch_and_restores_the_module(loaders):
    module = _cnn()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    table = api.sensitivity(module, "magnitude", "fine", [0.5, 0.1], example_input=EXAMPLE,
                            loaders=loaders)
    assert list(table.columns) == ["layer", "scheme", "target", "density", "accuracy", "drop"]
    assert len(table) == 10 and set(table.layer) == {"conv1", "conv2", "fc1", "fc2", "fc3"}
    assert np.allclose(table.density, table.target, atol=0.02)
    for key, value in before.items():
        assert torch.equal(module.get_parameter(key + "_orig") if key.endswith(("weight", "bias"))
                           else module.get_buffer(key), value)
    assert all(m.weight_mask.all() for m in (module.conv1, module.fc3))


def test_api_prune_takes_a_torch_module_with_loaders(loaders):
    module = MLP()
    api.check_prune_request(module, "magnitude", "fine", 0.1, "iterative", None, 1,
                            example_input=EXAMPLE, loaders=loaders)
    result = api.prune(module, "magnitude", "fine", 0.1, "iterative", epochs=1, example_input=EXAMPLE,
                       loaders=loaders)
    assert list(result.layers.layer) == ["fc1", "fc2", "fc3"]
    assert result.settings["schedule"] == "iterative"
    assert result.adapter.weight_count()[0] < 0.11 * result.adapter.weight_count()[1]


def test_callbacks_are_called_with_the_module():
    calls = []
    module = MLP()
    result = api.prune(module, "magnitude", "fine", 0.5, "agp", epochs=3, example_input=EXAMPLE,
                       evaluate=lambda m: calls.append(("evaluate", m)) or 0.75,
                       finetune=lambda m, e: calls.append(("finetune", m, e)))
    assert result.accuracy_before == result.accuracy_after == 0.75
    assert [c[0] for c in calls] == ["evaluate", "finetune", "finetune", "finetune", "evaluate"]
    assert all(c[1] is module for c in calls) and all(c[2] == 1 for c in calls if c[0] == "finetune")
    assert np.allclose(result.layers.density, 0.5, atol=0.01)


@pytest.mark.parametrize("kwargs, phrase", [
    (dict(evaluate=lambda m: "good"), "evaluate(model) must return a finite number"),
    (dict(evaluate=lambda m: float("nan")), "evaluate(model) must return a finite number"),
    (dict(evaluate=3), "evaluate must be a function evaluate(model) -> float"),
    (dict(evaluate=lambda m: 1.0, finetune="sgd"), "finetune must be a function finetune(model, epochs)"),
    (dict(), "needs an evaluation"),
    (dict(evaluate=lambda m: 1.0, epochs=2), "needs finetune=function(model, epochs)"),
    (dict(evaluate=lambda m: 1.0, criterion="taylor"), "criterion 'taylor' needs training batches"),
    (dict(loaders="data"), "loaders=(train_loader, test_loader)"),
    (dict(loaders=([1, 2], [1, 2])), "not (inputs, labels)"),
    (dict(loaders=([(torch.zeros(4, 1, 8, 8), torch.zeros(4))],) * 2), "integer tensor"),
    (dict(loaders=(iter([]), [])), "one-shot iterator"),
    (dict(loaders=([(torch.zeros(4, 1, 8, 8), torch.full((4,), 12))],) * 2), "outside the module's 10"),
    (dict(loaders=([(torch.zeros(4, 3, 8, 8), torch.zeros(4, dtype=torch.long))],) * 2),
     "does not run on its inputs"),
    (dict(example_input=None, evaluate=lambda m: 1.0), "needs example_input="),
])
def test_bad_callbacks_and_loaders_name_what_is_expected(kwargs, phrase):
    kwargs = {"example_input": EXAMPLE, "epochs": 0, **kwargs}
    criterion = kwargs.pop("criterion", "magnitude")
    with pytest.raises(InputError, match=None) as err:
        api.prune(MLP(), criterion, "fine", 0.5, "oneshot", **kwargs)
    assert phrase in str(err.value)


def test_bad_model_and_mixed_arguments():
    with pytest.raises(InputError, match="model must be a name"):
        api.prune([1, 2], example_input=EXAMPLE)
    with pytest.raises(InputError, match="apply to a torch model"):
        api.prune("digits-mlp", example_input=EXAMPLE)
    with pytest.raises(InputError, match="splices pruned weights"):
        api.prune(MLP(), "dns", epochs=1, example_input=EXAMPLE, evaluate=lambda m: 1.0,
                  finetune=lambda m, e: None)


def test_node_pruning_through_a_residual_add_keeps_one_unit_set_and_compacts():
    pytest.importorskip("torch_pruning")          # the coupling comes from DepGraph
    from hwprune.workload.torch_import import compact

    torch.manual_seed(1)
    module = Residual()
    result = api.prune(module, "magnitude", "node", 0.5, "oneshot", epochs=0, example_input=EXAMPLE,
                       evaluate=lambda m: 1.0)
    units = {n: module.get_submodule(n).weight_mask.reshape(4, -1).any(dim=1) for n in ("conv1", "conv2")}
    assert torch.equal(units["conv1"], units["conv2"]) and int(units["conv1"].sum()) == 2
    # conv2 and fc read none of the removed channels (fc: 64 positions per channel)
    assert not module.conv2.weight_mask[:, ~units["conv1"]].any()
    assert not module.fc.weight_mask.reshape(10, 4, 64)[:, ~units["conv1"]].any()
    assert set(result.layers.units_kept[:2]) == {2}
    # the compaction code cuts the same module to the same function
    x = torch.randn(3, 1, 8, 8)
    small = compact(module, {n: u.numpy() for n, u in units.items()}, EXAMPLE)
    assert small.conv1.out_channels == 2
    torch.testing.assert_close(small(x), module(x), rtol=1e-5, atol=1e-5)


def test_scalpel_prunes_a_coupled_group_by_node_together():
    """The layers a residual add couples take node pruning as one move in Scalpel's mix
    (both, or neither): here both, and the pruned module keeps one unit set for them."""
    pytest.importorskip("torch_pruning")
    torch.manual_seed(0)
    module = Residual()
    r = api.granularity(module, "cortex-m4", 0.01, example_input=EXAMPLE, evaluate=lambda m: 1.0,
                        finetune=lambda m, e: None)
    table = r.layers.set_index("layer")
    assert table.loc["conv1", "scheme"] == table.loc["conv2", "scheme"] == "node"
    assert table.loc["conv1", "density"] == table.loc["conv2", "density"] < 1
    assert "conv1" in table.loc["conv2", "reason"] or "conv2" in table.loc["conv1", "reason"]
    units = {n: module.get_submodule(n).weight_mask.reshape(4, -1).any(dim=1) for n in ("conv1", "conv2")}
    assert torch.equal(units["conv1"], units["conv2"])


def test_filter_pruning_through_a_residual_add_keeps_one_unit_set():
    """Filter pruning removes units too: the layers an add couples lose the same ones,
    so the deployed plan's reader keeps its inputs (issue 20: an fc priced at density 0)."""
    pytest.importorskip("torch_pruning")
    from hwprune.studies.deployed import plan_of

    torch.manual_seed(2)
    module = Residual()
    api.prune(module, "magnitude", {"conv1": "filter", "conv2": "filter", "fc": "fine"},
              {"conv1": 0.25, "conv2": 0.25, "fc": 1.0}, "oneshot", epochs=0, example_input=EXAMPLE,
              evaluate=lambda m: 1.0)
    units = {n: module.get_submodule(n).weight_mask.reshape(4, -1).any(dim=1) for n in ("conv1", "conv2")}
    assert torch.equal(units["conv1"], units["conv2"]) and int(units["conv1"].sum()) == 1
    _, plan = plan_of(TorchAdapter(module, EXAMPLE, evaluate=lambda m: 1.0),
                      {"conv1": "filter", "conv2": "filter", "fc": "fine"})
    assert plan["conv1"].density == plan["conv2"].density == 0.25
    assert plan["fc"].scheme.name == "dense"          # it reads the kept channel whole


def test_the_deployed_plan_reads_the_union_of_an_adds_branches():
    """Masks set by hand, each branch keeping different channels: the fc after the add
    still reads every channel some branch kept (conv1 keeps 0, 1; conv2 keeps 1, 2)."""
    from hwprune.studies.deployed import plan_of

    adapter = TorchAdapter(Residual(), EXAMPLE, evaluate=lambda m: 1.0)
    keep = {"conv1": [True, True, False, False], "conv2": [False, True, True, False]}
    masks = {n: np.broadcast_to(np.array(k)[:, None, None, None], adapter.layer(n).weight.shape).copy()
             for n, k in keep.items()}
    fc = np.ones((10, 4, 64), dtype=bool)
    fc[:, 0, :32] = False                          # half of channel 0's positions
    fc[:, 3] = False                               # channel 3 is gone in both branches
    masks["fc"] = fc.reshape(10, 256)
    adapter.set_masks(masks)
    _, plan = plan_of(adapter, {"conv1": "node", "conv2": "node", "fc": "fine"})
    assert plan["fc"].density == pytest.approx((3 * 64 - 32) / (3 * 64))


class DepthwiseBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.pw1 = nn.Conv2d(1, 8, 1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw2 = nn.Conv2d(8, 4, 1)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        x = torch.relu(self.dw(torch.relu(self.pw1(x))))
        return self.fc(torch.flatten(torch.relu(self.pw2(x)), 1))


class Concat(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(torch.flatten(torch.cat([self.a(x), self.b(x)], dim=1), 1))


def test_node_pruning_through_a_depthwise_conv_removes_its_channels_too():
    pytest.importorskip("torch_pruning")          # the coupling comes from DepGraph
    module = DepthwiseBlock()
    api.prune(module, "magnitude", "node", 0.5, "oneshot", epochs=0, example_input=EXAMPLE,
              evaluate=lambda m: 1.0)
    pw1 = module.pw1.weight_mask.reshape(8, -1).any(dim=1)
    dw = module.dw.weight_mask.reshape(8, -1).any(dim=1)
    assert torch.equal(pw1, dw) and int(pw1.sum()) == 4
    assert not module.pw2.weight_mask[:, ~dw].any()


def test_node_pruning_refusals_name_the_layer_before_any_training():
    pytest.importorskip("torch_pruning")          # the coupling comes from DepGraph
    with pytest.raises(InputError, match="concat"):
        api.check_prune_request(Concat(), "magnitude", "node", 0.5, "oneshot", None, 0,
                                example_input=EXAMPLE, evaluate=lambda m: 1.0)
    with pytest.raises(InputError, match="one granularity"):
        api.check_prune_request(Residual(), "magnitude", {"conv1": "node", "conv2": "fine", "fc": "fine"},
                                0.5, "oneshot", None, 0, example_input=EXAMPLE, evaluate=lambda m: 1.0)
    api.prune(Concat(), "magnitude", "fine", 0.5, "oneshot", epochs=0, example_input=EXAMPLE,
              evaluate=lambda m: 1.0)


def test_the_adapter_network_is_from_torch_for_the_cost_models():
    adapter = TorchAdapter(_cnn(), EXAMPLE, evaluate=lambda m: 1.0)
    net = adapter.network()
    assert [lay.name for lay in net.weighted_layers] == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert net.macs == models.to_network(models.build("digits-cnn")).macs


def test_import_hwprune_and_the_numpy_policies_do_not_import_torch():
    code = ("import sys, hwprune, hwprune.api, hwprune.prune.adapter, hwprune.prune.schedules, "
            "hwprune.studies.sensitivity; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


class Tokens(nn.Module):
    """A linear layer whose output is reshaped and multiplied (attention-like)."""

    def __init__(self):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)
        self.head = nn.Linear(16, 10)

    def forward(self, x):                       # x: (B, 2, 8) tokens
        scores = self.q(x) @ self.k(x).transpose(1, 2)
        return self.head(torch.flatten(scores @ self.v(x), 1))


def test_node_pruning_does_not_follow_units_through_layers_that_mix_channels():
    adapter = TorchAdapter(Tokens(), torch.zeros(1, 2, 8), evaluate=lambda m: 1.0)
    with pytest.raises(InputError, match="moves or mixes channels"):
        adapter.check_consumers("k")


def test_nm_block_and_rounded_node_prune_a_torch_model(loaders):
    """Issue 23's patterns through the same pruning path on a torch module: 2:4 keeps
    two of every four weights of each row, 4x4 blocks are kept or removed whole, and
    node-round8 keeps a multiple of 8 filters."""
    module = _cnn()
    adapter = TorchAdapter(module, EXAMPLE, loaders=loaders)
    result = api.prune(adapter, "magnitude", "2:4", 0.3, "oneshot", epochs=0)
    rows = module.fc1.weight_mask.bool().reshape(module.fc1.weight_mask.shape[0], -1)
    assert (rows.reshape(rows.shape[0], -1, 4).sum(dim=2) == 2).all()
    assert 0.0 < result.accuracy_after <= 1.0
    module = _cnn()
    api.prune(TorchAdapter(module, EXAMPLE, loaders=loaders), "magnitude", "block-4x4", 0.25,
              "oneshot", epochs=0)
    mask = module.fc1.weight_mask.bool()
    blocks = mask.reshape(mask.shape[0] // 4, 4, mask.shape[1] // 4, 4).sum(dim=(1, 3))
    assert set(blocks.unique().tolist()) <= {0, 16} and 0.2 < mask.float().mean() < 0.3
    module = _cnn()
    api.prune(TorchAdapter(module, EXAMPLE, loaders=loaders), "magnitude", "node-round8", 0.3,
              "oneshot", epochs=0)
    kept = module.conv2.weight_mask.reshape(module.conv2.weight_mask.shape[0], -1).any(dim=1).sum()
    assert int(kept) % 8 == 0 or int(kept) == module.conv2.weight_mask.shape[0]
