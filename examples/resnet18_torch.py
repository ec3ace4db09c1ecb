"""Bring your own model: a ResNet-18 built in PyTorch (random initialisation, nothing
downloaded), imported into hwprune, costed on Eyeriss, and a pruning granularity
recommended per layer on each built-in device.

    python examples/resnet18_torch.py                 # 3x224x224, the four devices
    python examples/resnet18_torch.py --small         # 3x32x32 and two devices (the test suite)

Needs ``pip install 'hwprune[torch]'``. The recommendation comes from the simulators
alone at an expected density (``--density``, default 0.3): an untrained network has no
accuracy to measure how far each scheme can prune.
"""

from __future__ import annotations

import argparse
import sys

import torch
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

    def __init__(self, classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths, cin, layers = (64, 128, 256, 512), 64, []
        for i, w in enumerate(widths):
            layers.append(nn.Sequential(BasicBlock(cin, w, 1 if i == 0 else 2), BasicBlock(w, w, 1)))
            cin = w
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="3x32x32 input and two devices")
    parser.add_argument("--density", type=float, default=0.3)
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
