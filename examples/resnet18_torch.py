"""Bring your own model: a ResNet-18 built in PyTorch (nothing downloaded), imported into
hwprune, costed on Eyeriss, and a pruning granularity chosen per layer on each device.

    python examples/resnet18_torch.py                 # costing only: 3x224x224, four devices
    python examples/resnet18_torch.py --small         # costing only: 3x32x32, two devices (tests)
    python examples/resnet18_torch.py --prune         # train, prune, trade-off (cortex-m4, titan-x)
    python examples/resnet18_torch.py --prune --small # the same, tiny and fast (the test suite)

Costing only (the default): random initialisation; the recommendation comes from the
simulators alone at an expected density (``--density``, default 0.3): an untrained
network has no accuracy to measure how far each scheme can prune.

``--prune``: the same ResNet-18 (torchvision's layout, ImageNet stem: 7x7/2 conv and
3x3/2 max pool, 10 classes) is trained on data that ships offline, scikit-learn's 8x8
handwritten digits (1,438 training and 359 test images), upsampled bilinearly to 32x32
and repeated to 3 channels, for ``--epochs`` epochs (default 12). Then, from fresh copies
of the trained weights, Scalpel's search and per-layer choice
(``hwprune.api.granularity``) for cortex-m4 and titan-x, and the trade-off sweep of every
policy on both devices (``hwprune.api.tradeoff``), with 1 epoch of fine-tuning per trial
and per point (``--prune-epochs``; hwprune's default is 8), written to ``--out`` (default
``./resnet18-tradeoff``): tradeoff.csv, scalpel-vs-traditional.csv and one plot per
device. The accuracies come from the small offline digits set, not from ImageNet or
CIFAR: they show the policies at work on this network, not its accuracy on real images.
The full run took 55 min and 3.2 GiB on a shared 2-core machine; its figures are in
docs/pruning.md.
``--prune --small`` (the test suite): a ResNet-18 one eighth as wide (8 to 64 channels),
16x16 inputs, the first 96 training and 48 test images, 1 training epoch.

Needs ``pip install 'hwprune[torch]'``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import hwprune
from hwprune.studies.recommend import recommend
from hwprune.workload.torch_import import from_torch


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + skip)


class ResNet18(nn.Module):
    """He et al. 2016, the torchvision layout (11.7 M parameters at 1000 classes)."""

    def __init__(self, classes: int = 1000, width: int = 64):
        """``width``: the first stage's channels (64; the stages double it); the test suite
        uses a narrower one."""
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths, cin, layers = (width, 2 * width, 4 * width, 8 * width), width, []
        for i, w in enumerate(widths):
            layers.append(nn.Sequential(BasicBlock(cin, w, 1 if i == 0 else 2), BasicBlock(w, w, 1)))
            cin = w
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8 * width, classes)

    def forward(self, x):
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


PRUNE_DEVICES = ("cortex-m4", "titan-x")


def loaders(size: int, n_train: int | None = None, n_test: int | None = None, seed: int = 0):
    """The offline digits, upsampled to ``size`` x ``size`` and repeated to 3 channels:
    (train, test) loaders of (images, labels); ``n_train``/``n_test``: the first so many
    images of each split (None: all, 1,437 and 360)."""
    from hwprune.prune.data import digits

    d = digits(seed)

    def up(a):
        x = F.interpolate(torch.tensor(a), size=(size, size), mode="bilinear", align_corners=False)
        return x.repeat(1, 3, 1, 1)

    train = torch.utils.data.TensorDataset(up(d.x_train[:n_train]), torch.tensor(d.y_train[:n_train]))
    test = torch.utils.data.TensorDataset(up(d.x_test[:n_test]), torch.tensor(d.y_test[:n_test]))
    g = torch.Generator().manual_seed(seed)
    return (torch.utils.data.DataLoader(train, batch_size=32, shuffle=True, generator=g),
            torch.utils.data.DataLoader(test, batch_size=512))


def costing(args) -> int:
    torch.manual_seed(0)
    model = ResNet18().eval()
    size = 32 if args.small else 224
    imported = from_torch(model, torch.randn(1, 3, size, size), name="resnet18-torch")
    net = imported.network
    print(f"{net.name}: {len(net.weighted_layers)} conv/fc layers, {net.params:,} parameters, "
          f"{net.macs:,} MACs at 3x{size}x{size}")
    energy = hwprune.energy(net, "eyeriss")
    print(f"\nenergy per layer on eyeriss ({energy['energy_unit'].iloc[0]}, batch 1):")
    print(energy[["layer", "macs", "energy_pj"]].to_string(index=False))
    devices = ("cortex-m4", "titan-x") if args.small else ("cortex-m4", "core-i7", "titan-x", "eyeriss")
    for dev in devices:
        table = recommend(net, hwprune.device(dev), args.density)
        counts = table["scheme"].value_counts().to_dict()
        print(f"\nrecommended granularity on {dev} at density {args.density} "
              f"({', '.join(f'{k}: {v}' for k, v in counts.items())} layers):")
        print(table[["layer", "scheme", "inputs_kept", "speedup", "energy_ratio"]].to_string(index=False))
    return 0


def prune(args) -> int:
    """Train on the offline digits, Scalpel's choice per device, the trade-off sweep."""
    from hwprune import api
    from hwprune.prune.torch_model import TorchAdapter
    from hwprune.report.tradeoff_files import write_tradeoff
    from hwprune.workload.torch_export import permanent_copy

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    size, n_train, n_test, width = (16, 96, 48, 8) if args.small else (32, None, None, 64)
    epochs = 1 if args.small else args.epochs
    data = loaders(size, n_train, n_test)
    n_tr, n_te = len(data[0].dataset), len(data[1].dataset)
    example = torch.zeros(1, 3, size, size)
    say = print if args.verbose else None
    torch.manual_seed(0)
    model = ResNet18(classes=10, width=width)
    print(f"ResNet-18 (ImageNet stem, {width} to {8 * width} channels, 10 classes) on the offline "
          f"digits: {n_tr} training and {n_te} test images, 3x{size}x{size}; {epochs} training "
          f"epoch(s), then {args.prune_epochs} fine-tuning epoch(s) per trial/point; "
          f"{torch.get_num_threads()} torch threads")
    TorchAdapter(model, example, loaders=data).finetune(epochs, 1.0, seed=0)    # dense training
    trained = permanent_copy(model).state_dict()
    print(f"trained: {time.perf_counter() - start:.0f} s")
    cols = ["layer", "scheme", "density", "inputs_kept", "speedup", "energy_ratio"]
    for dev in PRUNE_DEVICES:
        m = ResNet18(classes=10, width=width)
        m.load_state_dict(trained)
        r = api.granularity(m, dev, 0.01, 0, progress=say, example_input=example, loaders=data,
                            epochs=args.prune_epochs)
        table = r.layers
        counts = table["scheme"].value_counts().to_dict()
        print(f"\nScalpel's choice on {dev} (tolerance 0.01; "
              f"{', '.join(f'{k}: {v}' for k, v in counts.items())} layers): digits accuracy dense "
              f"{r.dense_accuracy:.3f}, pruned {r.final_accuracy:.3f}; "
              f"{time.perf_counter() - start:.0f} s")
        print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print("the search (digits accuracy of each scheme at each density tried):")
        print(r.search.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    m = ResNet18(classes=10, width=width)
    m.load_state_dict(trained)
    study = api.tradeoff(m, list(PRUNE_DEVICES), 0, say, example_input=example, loaders=data,
                         epochs=args.prune_epochs)
    pts = study.points
    print(f"\ntrade-off sweep ({len(pts)} points; {time.perf_counter() - start:.0f} s):")
    show = ["device", "policy", "setting", "accuracy", "energy", "energy_unit", "latency_s", "density",
            "pareto_energy", "pareto_latency"]
    print(pts[show].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print("\nScalpel vs traditional pruning (speedup over dense, tolerance 0.01):")
    print(study.versus.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    out = Path(args.out)
    files = write_tradeoff(out, pts, study.versus, list(PRUNE_DEVICES),
                           title="ResNet-18 (offline digits), {device}", force=args.force)
    print(f"\nwrote {', '.join(str(f) for f in files)}")
    print(f"\naccuracy: the offline digits test set ({n_te} images, one image = {100 / n_te:.2f}%), "
          f"3x{size}x{size}, not ImageNet or CIFAR; energy and latency: simulated at batch 1; "
          f"{time.perf_counter() - start:.0f} s in all")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true",
                        help="costing: 3x32x32, two devices; with --prune: 1/8 width, 16x16, 96 + 48 images")
    parser.add_argument("--density", type=float, default=0.3, help="costing only: the expected density")
    parser.add_argument("--prune", action="store_true",
                        help="train on the offline digits, Scalpel per device and the trade-off sweep")
    parser.add_argument("--epochs", type=int, default=12, help="--prune: dense training epochs")
    parser.add_argument("--prune-epochs", type=int, default=1,
                        help="--prune: fine-tuning epochs per Scalpel trial and per trade-off point")
    parser.add_argument("--out", default="resnet18-tradeoff", help="--prune: where the plots go")
    parser.add_argument("--force", action="store_true", help="--prune: write into a non-empty --out")
    parser.add_argument("--threads", type=int, default=2, help="--prune: torch threads")
    parser.add_argument("--verbose", action="store_true", help="--prune: print each trial")
    args = parser.parse_args(argv)
    return prune(args) if args.prune else costing(args)


if __name__ == "__main__":
    sys.exit(main())
