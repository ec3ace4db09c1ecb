"""Scalpel's own benchmarks as PyTorch models, pruned with hwprune's policies and priced
on a microcontroller and a GPU.

LeNet-300-100 and LeNet-5 (Caffe's, as in Han et al. 2015 and Scalpel) are written out
in torch and trained on data that ships offline: scikit-learn's 8x8 handwritten digits,
upsampled bilinearly to 28x28 (MNIST's size). Each is then pruned from the same trained
weights three ways, through hwprune's one pruning code path (``hwprune.api.prune`` with
the torch model adapter), and each pruned model is priced as deployed on the devices
(``hwprune.studies.deployed.evaluate_model``: energy and latency from hwprune's models):

* traditional: magnitude pruning of single weights, Han's iterative schedule (CSR);
* SIMD-aware: magnitude pruning of groups of the device's SIMD width (Scalpel);
* node: whole neurons and filters, the next layer's inputs with them (Scalpel).

    python examples/lenet_torch.py                # both networks, 20 + 8 epochs
    python examples/lenet_torch.py --small        # LeNet-5 only, few epochs (the test suite)

The accuracies come from this small offline data set (1,437 training and 360 test
images), not from MNIST: they show the policies at work, not MNIST results. Needs
``pip install 'hwprune[torch]'``.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

import hwprune
from hwprune import api
from hwprune.prune.data import digits
from hwprune.prune.torch_model import TorchAdapter
from hwprune.studies.deployed import evaluate_model
from hwprune.workload.torch_export import permanent_copy


class LeNet300(nn.Module):
    """LeNet-300-100: 784-300-100-10."""

    def __init__(self):
        super().__init__()
        self.ip1, self.ip2, self.ip3 = nn.Linear(784, 300), nn.Linear(300, 100), nn.Linear(100, 10)

    def forward(self, x):
        x = torch.flatten(x, 1)
        return self.ip3(torch.relu(self.ip2(torch.relu(self.ip1(x)))))


class LeNet5(nn.Module):
    """Caffe's LeNet-5: conv 20 5x5, pool, conv 50 5x5, pool, fc 500, fc 10."""

    def __init__(self):
        super().__init__()
        self.conv1, self.pool1 = nn.Conv2d(1, 20, 5), nn.MaxPool2d(2)
        self.conv2, self.pool2 = nn.Conv2d(20, 50, 5), nn.MaxPool2d(2)
        self.ip1, self.ip2 = nn.Linear(800, 500), nn.Linear(500, 10)

    def forward(self, x):
        x = self.pool2(self.conv2(self.pool1(self.conv1(x))))
        return self.ip2(torch.relu(self.ip1(torch.flatten(x, 1))))


def loaders(seed: int = 0):
    """Digits upsampled to 28x28: (train, test) loaders of (images, labels)."""
    d = digits(seed)

    def up(a):
        return F.interpolate(torch.tensor(a), size=(28, 28), mode="bilinear", align_corners=False)

    train = torch.utils.data.TensorDataset(up(d.x_train), torch.tensor(d.y_train))
    test = torch.utils.data.TensorDataset(up(d.x_test), torch.tensor(d.y_test))
    g = torch.Generator().manual_seed(seed)
    return (torch.utils.data.DataLoader(train, batch_size=32, shuffle=True, generator=g),
            torch.utils.data.DataLoader(test, batch_size=512))


POLICIES = (("traditional", "fine", 0.1), ("simd-aware", "simd", 0.15), ("node", "node", 0.5))
"""(label, granularity, density): densities as Scalpel's results suggest for MNIST-sized
networks (SIMD groups keep somewhat more than single weights; node pruning keeps units)."""


def run(model_cls, devices, epochs: int, prune_epochs: int, seed: int = 0) -> list[dict]:
    torch.manual_seed(seed)
    data = loaders(seed)
    example = torch.zeros(1, 1, 28, 28)
    model = model_cls()
    TorchAdapter(model, example, loaders=data).finetune(epochs, 1.0, seed=seed)   # dense training
    trained = permanent_copy(model).state_dict()         # plain weights, no mask buffers
    rows = []
    dense = TorchAdapter(model, example, loaders=data)
    base = {d.id: evaluate_model(dense, d, "dense").total for d in devices}
    for label, gran, density in POLICIES:
        for dev in devices:
            m = model_cls()
            m.load_state_dict(trained)
            group, schemes = None, gran
            if gran == "simd":
                # Scalpel: groups of the device's SIMD width; a layer whose weight rows are
                # shorter than one group stays dense
                g = dev.compute.simd_lanes
                schemes = {lay.name: "simd" if lay.weight[0].size >= g else "dense"
                           for lay in dense.prunable()}
                group = {name: g if s == "simd" else None for name, s in schemes.items()}
            result = api.prune(m, "magnitude", schemes, density, "iterative", group, prune_epochs,
                               seed, example_input=example, loaders=data)
            cost = evaluate_model(result.adapter, dev, schemes).total
            kept, total = result.adapter.weight_count()
            rows.append({"network": model_cls.__name__, "policy": label, "device": dev.id,
                         "accuracy_dense": result.accuracy_before,
                         "accuracy_pruned": result.accuracy_after,
                         "weights_kept": kept / total,
                         "speedup": base[dev.id].latency_s / cost.latency_s,
                         "energy_ratio": cost.energy / base[dev.id].energy})
            if gran != "simd":
                # the other schemes do not depend on the device: price this model everywhere
                for other in devices[1:]:
                    c = evaluate_model(result.adapter, other, gran).total
                    rows.append({**rows[-1], "device": other.id,
                                 "speedup": base[other.id].latency_s / c.latency_s,
                                 "energy_ratio": c.energy / base[other.id].energy})
                break
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="LeNet-5 only, 2 + 2 epochs")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    devices = [hwprune.device("cortex-m4"), hwprune.device("titan-x")]
    nets, epochs, prune_epochs = ((LeNet5,), 2, 2) if args.small else ((LeNet300, LeNet5), 20, 8)
    start = time.perf_counter()
    rows = []
    for net in nets:
        rows += run(net, devices, epochs, prune_epochs)
    import pandas as pd

    table = pd.DataFrame(rows).sort_values(["network", "device", "policy"], kind="stable")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\naccuracy: the digits test set (360 images, one image = 0.28%), not MNIST; speedup "
          f"and energy_ratio: simulated, against the dense model on the same device; "
          f"{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
