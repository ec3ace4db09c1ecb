"""Published pruned structures, every number with its source.

These are data, not measurements of hwprune's: what three papers and one code release
report for the networks they pruned. :mod:`hwprune.studies.density_model` derives the
density each granularity reaches at equal accuracy from them, and
``benchmarks/validate_scalpel.py`` prices Scalpel's own benchmark networks with them.

* :data:`MAO_EQUAL_ACCURACY`: Mao et al. 2017, density of kernel (2-D), vector (1-D)
  and fine-grained (0-D) pruning of five ImageNet networks at one top-5 accuracy per
  network (the table "at a given accuracy point"; seeds/001).
* :data:`HAN_FINE`: Han et al. 2015, per-layer weight density of fine-grained magnitude
  pruning with retraining (no accuracy loss): LeNet-300-100 and LeNet-5 as quoted in
  Guo et al. 2016's Table 1 (seeds/003, column "Params.% [9]"), AlexNet from Han et al.'s
  Table 4 (seeds/002, column "Weights%").
* :data:`SCALPEL_NODE`: Scalpel's node-pruned structures (kept units / units per
  layer), from the README of Scalpel's released code (github.com/jiecaoyu/scalpel-1,
  commit 38405df, table "Node Pruning": "<# of nodes after pruning>/<# of original
  nodes>"). Accuracy before/after: LeNet-300-100 98.48/98.54%, LeNet-5 99.34/99.34%,
  ConvNet 81.38/81.52%, NIN 89.67/89.68%, AlexNet top-5 80.3/80.5%.
* :data:`SCALPEL_SIMD`: the weights SIMD-aware pruning removed in the same release
  (``SIMD_Aware_MNIST``, group width 8): the whole network's density, not per layer.
* :data:`SCALPEL_MEAN_SPEEDUP`: the mean speedups of Scalpel's abstract (ISCA 2017).

Layer names are those of hwprune's built-in networks (``hwprune.network(name)``).
Scalpel's "ConvNet" is Caffe's CIFAR-10 network with one fc layer (64*4*4 -> 10); the
built-in ``cifar10-quick`` has a hidden fc layer ``ip1`` (64 units) that the ConvNet
lacks, so no published structure prunes it (:data:`SCALPEL_NODE` leaves it out).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

MAO_SOURCE = ("Mao et al., Exploring the Regularity of Sparse Structure in Convolutional "
              "Neural Networks, NIPS-W 2017, table 'at a given accuracy point' (seeds/001)")
HAN_SOURCE_LENET = ("Han et al., NIPS 2015, Tables 1-2, as quoted by Guo et al. (Dynamic "
                    "Network Surgery, NIPS 2016) Table 1, column 'Params.% [9]' (seeds/003)")
HAN_SOURCE_ALEXNET = "Han et al., NIPS 2015, Table 4, column 'Weights%' (seeds/002)"
SCALPEL_CODE = ("Yu et al., Scalpel (ISCA 2017), released code github.com/jiecaoyu/scalpel-1 "
                "(commit 38405df), README")
SCALPEL_PAPER = "Yu et al., Scalpel, ISCA 2017, abstract"


@dataclass(frozen=True)
class MaoRow:
    """One network of Mao et al.'s table: top-5 accuracy held, and the density each
    granularity reached there (fractions)."""

    network: str
    top5: float
    kernel: float
    vector: float
    fine: float


MAO_EQUAL_ACCURACY: tuple[MaoRow, ...] = (
    MaoRow("AlexNet", 0.803, 0.378, 0.299, 0.221),
    MaoRow("VGG-16", 0.906, 0.444, 0.307, 0.270),
    MaoRow("GoogLeNet", 0.890, 0.437, 0.369, 0.323),
    MaoRow("ResNet-50", 0.923, 0.613, 0.400, 0.371),
    MaoRow("DenseNet-121", 0.919, 0.355, 0.311, 0.266),
)
"""Mao et al. 2017 (:data:`MAO_SOURCE`)."""

HAN_FINE: Mapping[str, Mapping[str, float]] = {
    "lenet-300-100": {"ip1": 0.08, "ip2": 0.09, "ip3": 0.26},
    "lenet-5": {"conv1": 0.66, "conv2": 0.12, "ip1": 0.08, "ip2": 0.19},
    "alexnet": {"conv1": 0.84, "conv2": 0.38, "conv3": 0.35, "conv4": 0.37, "conv5": 0.37,
                "fc6": 0.09, "fc7": 0.09, "fc8": 0.25},
}
"""Han et al. 2015 fine-grained per-layer weight density (kept fraction) at no accuracy
loss: LeNets :data:`HAN_SOURCE_LENET`, AlexNet :data:`HAN_SOURCE_ALEXNET`."""

HAN_SOURCES = {"lenet-300-100": HAN_SOURCE_LENET, "lenet-5": HAN_SOURCE_LENET,
               "alexnet": HAN_SOURCE_ALEXNET}

SCALPEL_NODE: Mapping[str, Mapping[str, tuple[int, int]]] = {
    # 784->161/300(ip)->64/100(ip)->10(ip)
    "lenet-300-100": {"ip1": (161, 300), "ip2": (64, 100)},
    # 1->9/20(conv)->18/50(conv)->65/500(ip)->10(ip)
    "lenet-5": {"conv1": (9, 20), "conv2": (18, 50), "ip1": (65, 500)},
    # ConvNet: 3->28/32(conv)->22/32(conv)->40/64(conv)->10(ip)
    "cifar10-quick": {"conv1": (28, 32), "conv2": (22, 32), "conv3": (40, 64)},
    # NIN: 3->117/192->81/160->62/96->183/192->123/192->148/192->91/192->54/192->10
    "nin-cifar10": {"conv1": (117, 192), "cccp1": (81, 160), "cccp2": (62, 96),
                    "conv2": (183, 192), "cccp3": (123, 192), "cccp4": (148, 192),
                    "conv3": (91, 192), "cccp5": (54, 192)},
    # AlexNet: 3->83/96->225/256->233/384->238/384->253/256->3001/4096->3029/4096->1000
    "alexnet": {"conv1": (83, 96), "conv2": (225, 256), "conv3": (233, 384),
                "conv4": (238, 384), "conv5": (253, 256), "fc6": (3001, 4096),
                "fc7": (3029, 4096)},
}
"""Scalpel's node-pruned structures (:data:`SCALPEL_CODE`): per layer (kept units,
original units); the last layer of each network keeps its outputs (the classes)."""

SCALPEL_NODE_KIND: Mapping[str, Mapping[str, str]] = {
    net: {layer: ("fc" if layer.startswith(("ip", "fc")) else "conv") for layer in layers}
    for net, layers in SCALPEL_NODE.items()
}
"""``conv`` or ``fc`` per layer of :data:`SCALPEL_NODE` (NIN's ``cccp`` layers are 1x1
convolutions)."""


@dataclass(frozen=True)
class SimdResult:
    """SIMD-aware pruning as released: group ``width``, the network's weight density
    after the last stage (kept fraction of all weights) and the accuracy before."""

    width: int
    density: float
    top1_before: float


SCALPEL_SIMD: Mapping[str, SimdResult] = {
    "lenet-300-100": SimdResult(8, 1 - 0.920, 0.9848),   # "It can remove 92.0% of the weights"
    "lenet-5": SimdResult(8, 1 - 0.968, 0.9934),         # "It will remove 96.8% of the weights"
}
"""SIMD-aware pruning in Scalpel's release (:data:`SCALPEL_CODE`, SIMD_Aware_MNIST);
the README gives no accuracy after pruning and no per-layer density."""

HAN_NETWORK_DENSITY = {"lenet-300-100": 22 / 267, "lenet-5": 36 / 431, "alexnet": 6.7 / 61}
"""Han et al. 2015 Table 1, parameters kept / parameters (22K/267K, 36K/431K, 6.7M/61M;
seeds/001)."""

SCALPEL_MEAN_SPEEDUP = {
    # device class: (Scalpel, traditional weight pruning), mean over Scalpel's networks
    "mcu": (3.54, 1.90),
    "cpu": (2.61, 1.06),
    "gpu": (1.25, 0.41),
}
"""Scalpel's abstract (:data:`SCALPEL_PAPER`): mean speedup over dense on the ARM
Cortex-M4 (mcu), Intel Core i7 (cpu) and NVIDIA GTX Titan X (gpu), of Scalpel (SIMD-
aware pruning on the mcu, SIMD-aware on fc and node pruning on conv layers on the cpu,
node pruning on the gpu) and of traditional (fine-grained) weight pruning."""


def node_kept(network: str) -> dict[str, float]:
    """Kept fraction of units per layer of Scalpel's node-pruned ``network``."""
    return {layer: kept / total for layer, (kept, total) in SCALPEL_NODE[network].items()}
