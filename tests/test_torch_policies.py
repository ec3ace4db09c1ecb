"""Scalpel, the trade-off sweep and the deployed plan on a torch module: the same policy
code as the numpy reference models, through the model adapter (issue 20, items 1 and 6)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import hwprune  # noqa: E402
from hwprune.prune import models  # noqa: E402
from hwprune.prune.data import digits  # noqa: E402
from hwprune.prune.schedules import prune as schedule_prune  # noqa: E402
from hwprune.prune.torch_model import TorchAdapter  # noqa: E402
from hwprune.studies.deployed import evaluate_model, plan_of  # noqa: E402


class CNN(nn.Module):
    """digits-cnn's architecture in torch (the same layer names)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 16, 3, padding=1)
        self.pool2 = nn.MaxPool2d(2)
        self.fc1, self.fc2, self.fc3 = nn.Linear(64, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool1(torch.relu(self.conv1(x)))
        x = self.pool2(torch.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


EXAMPLE = torch.zeros(1, 1, 8, 8)


def _torch_copy(numpy_model, module):
    with torch.no_grad():
        for lay in numpy_model.prunable():
            mod = module.get_submodule(lay.name)
            mod.weight.copy_(torch.from_numpy(lay.weight))
            mod.bias.copy_(torch.from_numpy(lay.bias))
    return module


@pytest.mark.parametrize("schemes", ["fine", "node", "filter", "simd",
                                     {"conv1": "node", "conv2": "fine", "fc1": "node", "fc2": "simd",
                                      "fc3": "fine"}])
def test_plan_of_a_torch_model_equals_the_numpy_models(schemes):
    """The same weights and masks give the same plan and the same simulated costs."""
    gran = schemes if isinstance(schemes, str) else {n: s for n, s in schemes.items()}
    model, data = models.build("digits-cnn", 3), digits(0)
    module = _torch_copy(model, CNN())
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
