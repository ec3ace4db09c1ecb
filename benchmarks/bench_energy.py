"""Time hwprune's energy estimate for every built-in network on every built-in device,
and ZigZag (PyPI zigzag-dse) on AlexNet with its eyeriss_like example beside hwprune
on the same hierarchy (``benchmarks/peers/zigzag_eyeriss_like.toml``), in one run.

hwprune prices the built-in AlexNet (torchvision's, ungrouped; ZigZag's ONNX is the
BVLC one, with grouped conv2/4/5) with its layers searched on
``hwprune.cost.energy.SEARCH_THREADS`` threads (the machine's cores); ZigZag runs one
process.

Each hwprune figure is the median of ``--repeats`` full estimates with the mapping
cache cleared before each, so every layer's mapping is searched again; the numba
kernels are compiled (or loaded from their cache) by a warm-up call first, whose time
is reported separately as ``first_call_s``.

Run:  python benchmarks/bench_energy.py [--repeats 5] [--out FILE.csv] [--no-peer]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hwprune  # noqa: E402
from hwprune.cost import energy as energy_module  # noqa: E402
from hwprune.cost import search as search_module  # noqa: E402

DEVICES = ("eyeriss", "core-i7", "titan-x", "cortex-m4")
MIRROR = Path(__file__).resolve().parent / "peers" / "zigzag_eyeriss_like.toml"
"""hwprune's profile of ZigZag's eyeriss_like hierarchy, for the same work as the peer."""


def time_estimate(net: str, dev: str, repeats: int) -> tuple[float, float, int]:
    times = []
    total = 0.0
    for _ in range(repeats):
        energy_module._mapping.cache_clear()
        energy_module._ladder_mapping.cache_clear()
        search_module._spatial_candidates.cache_clear()
        search_module._partial_candidates.cache_clear()
        start = time.perf_counter()
        df = hwprune.energy(net, dev)
        times.append(time.perf_counter() - start)
        total = float(df["energy_pj"].sum())
    return statistics.median(times), total, len(df)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", help="write the table as CSV")
    parser.add_argument("--no-peer", action="store_true", help="skip ZigZag")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    hwprune.energy("lenet-5", "eyeriss")
    first_call = time.perf_counter() - start
    print(f"first call (numba load/compile + lenet-5 on eyeriss): {first_call:.2f} s")

    rows = []
    for net in hwprune.networks()["network"]:
        for dev in DEVICES:
            median, total, layers = time_estimate(net, dev, args.repeats)
            rows.append({"tool": "hwprune", "network": net, "device": dev, "layers": layers,
                         "median_s": median, "energy_pj": total})
    df = pd.DataFrame(rows)
    wide = df.pivot(index="network", columns="device", values="median_s")[list(DEVICES)]
    wide["all_devices_s"] = wide.sum(axis=1)
    print("\nhwprune: median seconds per whole-network estimate")
    print(wide.to_string(float_format=lambda v: f"{v:.3f}"))

    if not args.no_peer:
        from zigzag_peer import run_zigzag_alexnet, zigzag_import_problem

        problem = zigzag_import_problem()
        if problem is None:
            ours, _, _ = time_estimate("alexnet", str(MIRROR), args.repeats)
            peer = run_zigzag_alexnet()
            rows.append({"tool": "zigzag", "network": "alexnet", "device": "eyeriss_like",
                         "layers": peer["layers"], "median_s": peer["seconds"],
                         "energy_pj": peer["energy_pj"]})
            print(f"\nAlexNet on ZigZag's eyeriss_like accelerator, same run:"
                  f"\n  hwprune {ours:.3f} s (median of {args.repeats}; profile {MIRROR.name})"
                  f"\n  ZigZag {peer['version']} {peer['seconds']:.1f} s (one run, "
                  f"{peer['layers']} layers)"
                  f"\n  ratio  {peer['seconds'] / ours:.0f}x")
        else:
            print(f"\n{problem}; peer comparison skipped")
    if args.out:
        pd.DataFrame(rows).to_csv(args.out, index=False)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
