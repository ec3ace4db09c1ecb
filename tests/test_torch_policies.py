"""Scalpel, the trade-off sweep and the deployed plan on a torch module: the same policy
code as the numpy reference models, through the model adapter (issue 20, items 1 and 6)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from torch_twins import CNN, EXAMPLE, torch_copy  # noqa: E402

import hwprune  # noqa: E402
from hwprune import api  # noqa: E402
from hwprune.errors import InputError  # noqa: E402
from hwprune.prune import models  # noqa: E402
from hwprune.prune.data import digits  # noqa: E402
from hwprune.prune.schedules import prune as schedule_prune  # noqa: E402
from hwprune.prune.torch_model import TorchAdapter  # noqa: E402
from hwprune.studies import energy_aware as EA  # noqa: E402
from hwprune.studies import scalpel as S  # noqa: E402
from hwprune.studies import tradeoff as T  # noqa: E402
from hwprune.studies.deployed import evaluate_model, plan_of  # noqa: E402


@pytest.mark.parametrize("schemes", ["fine", "node", "filter", "simd",
                                     {"conv1": "node", "conv2": "fine", "fc1": "node", "fc2": "simd",
                                      "fc3": "fine"}])
def test_plan_of_a_torch_model_equals_the_numpy_models(schemes):
    """The same weights and masks give the same plan and the same simulated costs."""
    gran = schemes if isinstance(schemes, str) else {n: s for n, s in schemes.items()}
    model, data = models.build("digits-cnn", 3), digits(0)
    module = torch_copy(model, CNN())
    group = 4 if gran == "simd" else ({n: (4 if s == "simd" else None) for n, s in gran.items()}
                                      if isinstance(gran, dict) else None)
    schedule_prune(model, data, "magnitude", gran, 0.3, "oneshot", group, epochs=0)
    adapter = TorchAdapter(module, EXAMPLE, evaluate=lambda m: 1.0)
    adapter.set_masks({lay.name: lay.mask for lay in model.prunable()})
    _, a = plan_of(model, schemes)
    _, b = plan_of(adapter, schemes)
    assert dict(a.layers) == dict(b.layers)
    assert any(lp.density < 1 for lp in a.layers.values())
    dev = hwprune.device("cortex-m4")
    ea, eb = evaluate_model(model, dev, schemes), evaluate_model(adapter, dev, schemes)
    for name in a.layers:
        ca, cb = ea[name].cost, eb[name].cost
        assert (ca.energy, ca.latency_s, ca.bytes) == pytest.approx((cb.energy, cb.latency_s, cb.bytes),
                                                                    rel=1e-9)


@pytest.fixture(scope="module")
def loaders():
    d = digits(0)
    tr = torch.utils.data.TensorDataset(torch.tensor(d.x_train[:384]), torch.tensor(d.y_train[:384]))
    te = torch.utils.data.TensorDataset(torch.tensor(d.x_test), torch.tensor(d.y_test))
    return (torch.utils.data.DataLoader(tr, batch_size=64, shuffle=True,
                                        generator=torch.Generator().manual_seed(0)),
            torch.utils.data.DataLoader(te, batch_size=360))


@pytest.fixture(scope="module")
def trained(loaders):
    """A CNN trained 4 epochs with the adapter's default loop: a function giving a fresh
    copy (an unpruned module with the trained weights)."""
    torch.manual_seed(0)
    module = CNN()
    TorchAdapter(module, EXAMPLE, loaders=loaders).finetune(4, 1.0, 0)
    weights = {name: (module.get_submodule(name).weight.detach().clone(),
                      module.get_submodule(name).bias.detach().clone())
               for name in ("conv1", "conv2", "fc1", "fc2", "fc3")}

    def fresh():
        out = CNN()
        with torch.no_grad():
            for name, (w, b) in weights.items():
                out.get_submodule(name).weight.copy_(w)
                out.get_submodule(name).bias.copy_(b)
        return out
    return fresh


@pytest.fixture
def small_grid(monkeypatch):
    monkeypatch.setattr(S, "DENSITY_GRID", (0.5, 0.25))


def test_granularity_on_a_torch_model_gives_a_per_layer_table(loaders, trained, small_grid):
    module = trained()
    r = api.granularity(module, "cortex-m4", 0.05, example_input=EXAMPLE, loaders=loaders, epochs=1)
    assert r.model == "CNN" and r.device == "cortex-m4"
    assert list(r.layers["layer"]) == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert set(r.search["scheme"]) == {"fine", "simd", "node"}
    assert 0 < r.dense_accuracy <= 1 and 0 < r.final_accuracy <= 1
    assert r.pruned is module                       # pruned in place, with the final choice
    pruned = [n for n, s in r.schemes.items() if s.prunes]
    for n in pruned:
        assert not module.get_submodule(n).weight_mask.bool().all()
    # the module's accuracy is the final one reported
    acc = TorchAdapter(module, EXAMPLE, loaders=loaders).evaluate()
    assert acc == pytest.approx(r.final_accuracy)


def test_granularity_takes_callbacks_and_refuses_a_torch_model_without_training(trained, small_grid):
    module, calls = trained(), []

    def finetune(m, epochs):
        calls.append(epochs)
    r = api.granularity(module, "titan-x", 0.01, example_input=EXAMPLE, evaluate=lambda m: 0.5,
                        finetune=finetune, epochs=1)
    assert calls and set(calls) == {1}
    assert r.final_accuracy == 0.5 and len(r.layers) == 5
    with pytest.raises(InputError, match="finetune"):
        api.granularity(trained(), "titan-x", example_input=EXAMPLE, evaluate=lambda m: 0.5)
    with pytest.raises(InputError, match="example_input"):
        api.granularity(trained(), "titan-x", evaluate=lambda m: 0.5, finetune=finetune)
    with pytest.raises(InputError, match="torch model"):
        api.granularity("digits-mlp", "titan-x", evaluate=lambda m: 0.5)


@pytest.fixture
def small_sweep(monkeypatch):
    monkeypatch.setattr(S, "DENSITY_GRID", (0.5, 0.25))
    monkeypatch.setattr(T, "DENSITIES", (0.3,))
    monkeypatch.setattr(T, "TOLERANCES", (0.02,))
    monkeypatch.setattr(T, "BUDGETS", (0.02,))
    monkeypatch.setattr(EA, "DENSITY_GRID", (0.5, 0.25))


def test_tradeoff_on_a_torch_model_records_the_documented_columns(loaders, trained, small_sweep):
    module = trained()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    steps = []
    devs = ["cortex-m4", "titan-x"]
    study = api.tradeoff(module, devs, progress=steps.append, example_input=EXAMPLE, loaders=loaders,
                         epochs=1)
    points = study.points
    assert len(steps) == api.tradeoff_steps(module, [hwprune.device(d) for d in devs], loaders=loaders)
    assert list(points.columns[:len(T.COLUMNS)]) == list(T.COLUMNS)
    for dev in devs:
        got = set(points[points["device"] == dev]["policy"])
        assert got == {"dense", "magnitude", "fine-agp", "vector", "kernel", "filter", "node", "simd",
                       "scalpel", "energy-aware"}
    assert points[["accuracy", "energy", "latency_s", "model_bytes", "density"]].notna().all().all()
    assert (points["model"] == "CNN").all()
    dense = points[points["policy"] == "dense"].set_index("device")
    pruned = points[points["policy"] == "magnitude"].set_index("device")
    assert (pruned["density"] < 0.5).all()
    assert (pruned["model_bytes"] < dense["model_bytes"]).all()
    # one device's energy unit and its own costs: the two devices differ
    assert dense.loc["cortex-m4", "latency_s"] != dense.loc["titan-x", "latency_s"]
    # the dense point's accuracy is the module's own, and the module is left as it came in
    assert dense["accuracy"].iloc[0] == pytest.approx(TorchAdapter(trained(), EXAMPLE,
                                                                   loaders=loaders).evaluate())
    after = module.state_dict()
    for k, v in before.items():
        torch.testing.assert_close(after.get(k, after.get(k.replace(".weight", ".weight_orig")
                                                        .replace(".bias", ".bias_orig"))), v)
    assert all(bool(m.all()) for k, m in after.items() if k.endswith("_mask"))


def test_tradeoff_refuses_torch_arguments_for_a_reference_model():
    with pytest.raises(InputError, match="torch model"):
        api.tradeoff("digits-mlp", ["cortex-m4"], loaders=([], []))


def test_tradeoff_without_a_train_loader_has_no_energy_aware_points(trained, small_sweep):
    module, steps = trained(), []
    study = api.tradeoff(module, ["cortex-m4"], progress=steps.append, example_input=EXAMPLE,
                         evaluate=lambda m: 0.5, finetune=lambda m, e: None, epochs=1)
    assert "energy-aware" not in set(study.points["policy"])
    assert len(steps) == api.tradeoff_steps(module, [hwprune.device("cortex-m4")])


def test_layer_inputs_of_a_torch_model_equal_the_numpy_models():
    """The energy-aware re-fit reads the same im2col rows on both kinds."""
    from hwprune.prune.adapter import NumpyAdapter

    model, data = models.build("digits-cnn", 3), digits(0)
    module = torch_copy(model, CNN())
    a = NumpyAdapter(model, data)
    b = TorchAdapter(module, EXAMPLE, evaluate=lambda m: 1.0)
    x = data.x_train[:16]
    xa, xb = a.layer_inputs(x), b.layer_inputs(torch.tensor(x))
    for lay in model.prunable():
        np.testing.assert_allclose(xa[lay.name], xb[lay.name], rtol=1e-4, atol=1e-5, err_msg=lay.name)


def test_energy_aware_on_a_torch_model(loaders, trained, monkeypatch):
    monkeypatch.setattr(EA, "DENSITY_GRID", (0.5, 0.25))
    module = trained()
    r = api.energy_aware(module, "cortex-m4", 0.02, epochs=1, example_input=EXAMPLE, loaders=loaders)
    assert r.model is module
    assert list(r.layers["energy"]) == sorted(r.layers["energy"], reverse=True)
    assert (r.layers["accuracy_after_layer"] >= r.dense_accuracy - 0.02 - 1e-12).all()
    assert (r.layers["density"] < 1).any()
    for name, density in zip(r.layers["layer"], r.layers["density"]):
        mod = module.get_submodule(name)
        assert float(mod.weight_mask.float().mean()) == pytest.approx(density)
        assert not mod.weight_orig[~mod.weight_mask.bool()].any()      # pruned weights stay zero
    assert TorchAdapter(module, EXAMPLE, loaders=loaders).evaluate() == pytest.approx(r.final_accuracy)
    with pytest.raises(InputError, match="train"):
        api.energy_aware(trained(), "cortex-m4", example_input=EXAMPLE, evaluate=lambda m: 0.5,
                         finetune=lambda m, e: None)
