"""Granularity-aware reuse: vector (kernel-row) against fine-grained pruning at equal
density on VGG-16's convolutions, beside Mao et al. 2017's memory-reference ratio.

Published (Mao, Han, Pool, Li, Liu, Wang, Dally, "Exploring the Regularity of Sparse
Structure in Convolutional Neural Networks", 2017; the seeds' table "Output memory
references for VGG-16 (convolutional layers only)"): at densities 40.1%, 33.1% and
27.5%, fine-grained 1.77B / 1.53B / 1.33B references, vector pruning 1.23B / 1.03B /
0.87B: vector needs 69.5% / 67.2% / 65.3% of fine-grained's references.

Ours: the built-in ``eyeriss`` profile (row-stationary, weights stored compressed), every
conv layer of ``vgg16`` pruned to the density with ``fine`` (CSR, single weights) or
``vector`` (groups of a kernel row, S = 3 weights), priced by :func:`hwprune.evaluate`
(each layer's cheapest mapping at that density). Memory references: element reads and
writes of the global buffer and DRAM, every operand (the register file and the array
network are not memory); the output-only column counts partial sums and outputs.
Mao et al. count references on SCNN (Parashar et al., ISCA 2017), not Eyeriss, and prune
trained weights (whose kept groups cluster) where hwprune assumes independent groups:
the comparison is of the effect's size, not of one machine against another. Two
devices: the built-in eyeriss with the search free to hold several kernel rows per PE
(the energy-optimal mapping usually does, and then a pruned row rarely empties a PE's
tile), and the same profile with each PE's tile held to one kernel row (Mao et al.'s
assumption: a pruned row skips its input-row fetch and its partial-sum row).

Run:  python benchmarks/validate_granularity.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

import hwprune
from hwprune.cost.search import device_arrays
from hwprune.evaluate import LayerPlan, Plan, evaluate
from hwprune.hardware.registry import builtin_profile_dir

PUBLISHED = ((0.401, 1.77e9, 1.23e9), (0.331, 1.53e9, 1.03e9), (0.275, 1.33e9, 0.87e9))


def references(net, dev, scheme: str, density: float) -> tuple[np.ndarray, float]:
    """(reads + writes per operand at the global buffer and DRAM, energy) of the conv
    layers of ``net`` all pruned with ``scheme`` to ``density``."""
    convs = [lay.name for lay in net.weighted_layers if lay.kind == "conv"]
    storage = len(device_arrays(dev).storage)
    ev = evaluate(net, dev, Plan({n: LayerPlan(scheme, density) for n in convs}))
    memory = np.zeros(3)
    energy = 0.0
    for name in convs:
        le = ev[name]
        moved = le.energy.reads + le.energy.writes
        memory += moved[1:storage].sum(axis=0)      # storage levels above the RF (not the NoC)
        energy += le.cost.energy
    return memory, energy


ONE_ROW = """
[mapping.levels]
# Mao et al.'s accelerator model: a PE convolves one kernel row with one input row
# (row-stationary's 1-D primitive), so its tile iterates over S and F only.
RF = ["S", "F"]
"""


def one_row_eyeriss(tmp: Path):
    """The built-in eyeriss with each PE's tile held to one kernel row."""
    text = (builtin_profile_dir() / "eyeriss.toml").read_text()
    path = tmp / "eyeriss-one-row.toml"
    path.write_text(text.replace('id = "eyeriss"', 'id = "eyeriss-one-row"', 1).replace(
        "\n[[memory]]", ONE_ROW + "\n[[memory]]", 1))
    return hwprune.device(str(path))


def main() -> int:
    net = hwprune.network("vgg16")
    with tempfile.TemporaryDirectory() as tmp:
        devices = [("eyeriss (the search's best mapping)", hwprune.device("eyeriss")),
                   ("eyeriss, one kernel row per PE", one_row_eyeriss(Path(tmp)))]
        print("| device | density | Mao et al.: vector / fine references | hwprune: vector / fine "
              "memory references | error | hwprune: outputs only | error | hwprune: energy |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for label, dev in devices:
            for density, fine_pub, vector_pub in PUBLISHED:
                fine, e_fine = references(net, dev, "fine", density)
                vector, e_vector = references(net, dev, "vector", density)
                pub = vector_pub / fine_pub
                ours = vector.sum() / fine.sum()
                out = vector[2] / fine[2]
                print(f"| {label} | {density:.1%} | {pub:.1%} | {ours:.1%} | {ours / pub - 1:+.0%} | "
                      f"{out:.1%} | {out / pub - 1:+.0%} | {e_vector / e_fine:.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
