"""What the layers without MACs (passes) add to the built-in networks' energy and latency.

For each network and built-in device: the table's rows, its kernel (conv/fc/matmul)
rows, and the share of the energy and latency totals taken by the other rows (folded
batch norms, adds, pooling, concatenations, ...), dense, batch 1. Prints a markdown
table (docs/latency-model.md, "Layers without MACs").

Run:  python benchmarks/pass_share.py [NETWORK ...]
"""

from __future__ import annotations

import sys

from hwprune import api

DEVICES = ("cortex-m4", "core-i7", "titan-x", "eyeriss")


def main(argv: list[str] | None = None) -> int:
    nets = (argv if argv is not None else sys.argv[1:]) or ["resnet18", "googlenet", "mobilenet-v1"]
    print("| network | device | rows | kernel rows | passes' share of energy | passes' share of latency "
          "| total ms |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for net in nets:
        for dev in DEVICES:
            energy, latency = api.energy(net, dev), api.latency(net, dev)
            passes_e = energy.loc[energy["runs_as"] != "kernel", "energy_pj"].sum()
            passes_l = latency.loc[latency["runs_as"] != "kernel", "seconds"].sum()
            print(f"| {net} | {dev} | {len(energy)} | {(energy['runs_as'] == 'kernel').sum()} | "
                  f"{passes_e / energy['energy_pj'].sum():.1%} | "
                  f"{passes_l / latency['seconds'].sum():.1%} | {latency['seconds'].sum() * 1e3:.4g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
