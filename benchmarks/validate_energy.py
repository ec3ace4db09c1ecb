"""Compare hwprune's Eyeriss energy estimates with Yang, Chen & Sze (CVPR 2017), Table 1.

Published: normalized energy (units of one 16-bit MAC) of AlexNet, GoogLeNet and
SqueezeNet dense, and of AlexNet magnitude-pruned by Han et al. (2015). Ours: the
`eyeriss` profile with its default row-stationary dataflow, no constant tuned to any
of these networks.

Densities (examples/alexnet_han2015_densities.csv): Han et al. 2015, Table 4 (the
"Act%" and "Weights%" columns, as reprinted in the seeds). Act% is the density of a
layer's *output*, so a layer's input-activation density is the previous layer's Act%
(conv1 reads the image, density 1); the FLOP% column checks this reading
(conv2: 38% x 88% = 33%). The seeds give no activation densities for GoogLeNet and
SqueezeNet, so those run with dense activations, and the dense AlexNet row reuses
the pruned network's activation densities (the seeds give no others).

Pruned weights are stored run-length coded with the profile's 5-bit runs (the coder
Eyeriss uses for feature maps); zero weights are therefore neither moved nor
multiplied.

Run:  python benchmarks/validate_energy.py            (prints a markdown table)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd

import hwprune

ROOT = Path(__file__).resolve().parents[1]
HAN = ROOT / "examples" / "alexnet_han2015_densities.csv"

# (label, network, weights pruned?, published normalized energy, published non-skipped MACs)
ROWS = [
    ("AlexNet, dense", "alexnet", False, 3.97e9, 3.71e8),
    ("AlexNet, magnitude-pruned (Han et al.)", "alexnet", True, 1.85e9, 1.79e8),
    ("GoogLeNet, dense", "googlenet", False, 7.63e9, 7.41e8),
    ("SqueezeNet, dense", "squeezenet1.0", False, 5.28e9, 4.51e8),
]


def densities_for(net: str, pruned: bool):
    if net != "alexnet":
        return None
    han = pd.read_csv(HAN)
    if not pruned:
        han["weight_density"] = 1.0
    return han


def main(batches=(1, 4)) -> int:
    lines = [
        "| network | batch | published energy | hwprune energy | error | published MACs "
        "(non-skipped) | hwprune effective MACs | error |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    start = time.perf_counter()
    for label, net, pruned, energy_pub, macs_pub in ROWS:
        for batch in batches:
            df = hwprune.energy(net, "eyeriss", densities=densities_for(net, pruned),
                                batch=batch, weight_format="rle" if pruned else None)
            # The published figures price conv and fc layers only: so do we here (the
            # table's pass rows, pooling, concat, LRN-free adds, are left out).
            df = df[df["runs_as"] == "kernel"]
            # Per input, so that batches compare with the published per-image figures.
            ours = df["energy_norm"].sum() / batch
            macs = df["effective_macs"].sum() / batch
            lines.append(
                f"| {label} | {batch} | {energy_pub:.3g} | {ours:.3g} | "
                f"{(ours - energy_pub) / energy_pub:+.0%} | {macs_pub:.3g} | {macs:.3g} | "
                f"{(macs - macs_pub) / macs_pub:+.0%} |"
            )
    print("\n".join(lines))
    print(f"\n({time.perf_counter() - start:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
