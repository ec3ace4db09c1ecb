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

Peers (the ``peers`` section, after the Yang et al. table): hwprune on profiles that
mirror the peers' hierarchies (``benchmarks/peers/*.toml``, every number sourced to the
peer's file) against the peers' own per-layer, per-memory-level energies, on the same
layer shapes, precision (8-bit data, 16-bit partial sums) and batch (1):

* ZigZag 3.9.1 (``zigzag-dse``), its example accelerators eyeriss_like and tpu_like on
  its packaged AlexNet and ResNet-18 (``benchmarks/zigzag_peer.py`` runs it; every layer
  ZigZag evaluates is rebuilt as a one-layer hwprune network from the shape ZigZag
  reports).
* Timeloop's eyeriss_like reference output for the one layer that example ships
  (``benchmarks/peers/timeloop/``, copied from the repository and commit named there).

Targets (issue 22): network totals within +-10%, every layer within +-20%, every
memory level within +-25% (per layer, and summed over the network). The tables say which
pass and which fail; no constant is tuned to them. They are also written to
``benchmarks/results/energy_peers.md``.

Run:  python benchmarks/validate_energy.py            (prints markdown tables)
      python benchmarks/validate_energy.py --no-yang --zigzag-json /tmp/zz/*.json
          (peers only, ZigZag's results read from ``zigzag_peer.py --out`` files)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

import hwprune
from hwprune.workload.builder import NetworkBuilder

ROOT = Path(__file__).resolve().parents[1]
HAN = ROOT / "examples" / "alexnet_han2015_densities.csv"
PEERS = ROOT / "benchmarks" / "peers"
TIMELOOP_CSV = PEERS / "timeloop" / "eyeriss_like_default_problem.csv"
PEERS_MD = ROOT / "benchmarks" / "results" / "energy_peers.md"

# Issue 22's targets: relative error of hwprune against the peer.
TARGET_TOTAL, TARGET_LAYER, TARGET_LEVEL = 0.10, 0.20, 0.25

# ZigZag example accelerator -> (mirrored profile, {ZigZag memory instance: hwprune level}).
# "MAC" is the operational array (ZigZag's mac_energy, hwprune's compute_pj).
ZIGZAG_MIRRORS = {
    "eyeriss_like": ("zigzag_eyeriss_like.toml", {
        "rf_64B_A": "RF", "rf_64B_W": "RF", "rf_16B": "RF", "sram_8KB": "sram_8KB",
        "sram_64KB": "sram_64KB", "sram_1M": "sram_1M", "dram": "DRAM"}),
    "tpu_like": ("zigzag_tpu_like.toml", {
        "rf_128B": "RF", "rf_2B": "RF", "sram_2MB": "sram_2MB", "dram": "DRAM"}),
}
ZIGZAG_WORKLOADS = ("alexnet", "resnet18")
# Timeloop level -> hwprune level of benchmarks/peers/timeloop_eyeriss_like.toml.
TIMELOOP_LEVELS = {"mac": "MAC", "psum_spad": "RF", "weights_spad": "RF", "ifmap_spad": "RF",
                   "shared_glb": "shared_glb", "DRAM": "DRAM"}

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


def yang_table(batches=(1, 4)) -> str:
    """The Yang et al. (CVPR 2017) comparison, as a markdown table."""
    lines = [
        "| network | batch | published energy | hwprune energy | error | published MACs "
        "(non-skipped) | hwprune effective MACs | error |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
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
    return "\n".join(lines)


# ---------------------------------------------------------------------------- peers


def conv_layer(name: str, batch: int, c_in: int, hw_in: tuple[int, int], k_out: int,
               kernel: tuple[int, int], stride: tuple[int, int], pad_begin: tuple[int, int],
               pad_end: tuple[int, int], groups: int = 1):
    """A one-layer hwprune network: one convolution without bias (the peers price no
    bias). Returns (network, batch)."""
    b = NetworkBuilder(name, (c_in, *hw_in))
    b.conv(name, b.input, k_out, kernel, stride=stride, padding=pad_begin, groups=groups,
           bias=False, pad_end=pad_end)
    return b.build(), batch


def zigzag_layer_network(name: str, shape: dict):
    """Rebuild the layer ZigZag evaluated (``zigzag_peer.layer_shape``) as a one-layer
    hwprune network; the MAC count must match ZigZag's. Returns (network, batch)."""
    d = shape["dims"]
    if shape["type"] == "Gemm" or "OX" not in d:
        b = NetworkBuilder(name, (d["C"],))
        b.fc(name, b.input, d["K"], bias=False)
        net, batch = b.build(), d.get("B", 1) * d.get("D", 1)
    else:
        groups = d.get("G", 1)
        (pt, pb), (pl, pr) = shape["padding"]
        if "input" in shape:
            hw_in = tuple(shape["input"])
        else:  # ZigZag's own extent of the input (no padding)
            hw_in = (shape["stride"][0] * (d["OY"] - 1) + d["FY"] - pt - pb,
                     shape["stride"][1] * (d["OX"] - 1) + d["FX"] - pl - pr)
        net, batch = conv_layer(name, d.get("B", 1), d["C"] * groups, hw_in, d["K"] * groups,
                                (d["FY"], d["FX"]), tuple(shape["stride"]), (pt, pl), (pb, pr), groups)
        out = net.layers[-1].output_shape if hasattr(net.layers[-1], "output_shape") else None
        if out is not None and tuple(out[1:]) != (d["OY"], d["OX"]):
            raise ValueError(f"layer {name}: hwprune output {out} differs from ZigZag's OY, OX "
                             f"{d['OY']}, {d['OX']}")
    if net.macs * batch != shape["macs"]:
        raise ValueError(f"layer {name}: hwprune counts {net.macs * batch} MACs, ZigZag {shape['macs']}")
    return net, batch


def hwprune_levels(net, batch: int, profile: Path) -> dict[str, float]:
    """hwprune's energy of a one-layer network per memory level (and "MAC"), pJ."""
    dev = hwprune.device(profile)
    row = hwprune.energy(net, dev, batch=batch).iloc[0]
    levels = {lvl.name: float(row[f"{lvl.name.lower()}_pj"]) for lvl in dev.memory}
    levels["MAC"] = float(row["compute_pj"])
    return levels


def _err(ours: float, peer: float) -> float:
    if peer == 0:
        return 0.0 if ours == 0 else float("inf")
    return (ours - peer) / peer


def _mark(err: float, target: float) -> str:
    return "pass" if abs(err) <= target else "FAIL"


def zigzag_records(result: dict, hardware: str) -> list[dict]:
    """Per layer: {"layer", "shape", "peer": {level: pJ}, "ours": {level: pJ}} for one
    ZigZag run (``zigzag_peer.run_zigzag``'s dict), peer levels mapped to the mirror's."""
    profile_file, level_map = ZIGZAG_MIRRORS[hardware]
    records = []
    for i, layer in enumerate(result["per_layer"]):
        shape = layer["shape"]
        if shape["type"] not in ("Conv", "Gemm"):
            continue  # ZigZag's Add/Pooling nodes; hwprune prices them as passes
        peer: dict[str, float] = {"MAC": layer["mac_energy_pj"]}
        for mem, entry in layer["levels"].items():
            if mem not in level_map:
                raise ValueError(f"ZigZag memory {mem!r} of {hardware} has no mirrored level")
            peer[level_map[mem]] = peer.get(level_map[mem], 0.0) + entry["energy_pj"]
        name = f"{i:02d}_{layer['name']}"
        net, batch = zigzag_layer_network(name, shape)
        d = shape["dims"]
        text = f"K{d['K']} C{d['C']}" + (f" G{d['G']}" if d.get("G", 1) > 1 else "")
        if "OX" in d:
            text += f" {d['OY']}x{d['OX']} F{d['FY']}x{d['FX']} s{shape['stride'][0]}"
        records.append({"layer": f"{layer['name']} ({shape['type'].lower()})", "shape": text, "peer": peer,
                        "ours": hwprune_levels(net, batch, PEERS / profile_file)})
    return records


def timeloop_records() -> list[dict]:
    """The Timeloop reference layer: its per-level energies (the checked-in CSV) and
    hwprune's on the mirrored profile."""
    text = TIMELOOP_CSV.read_text()
    layer_line = next(line for line in text.splitlines() if line.startswith("# layer"))
    kv = dict(re.findall(r"(\w+)=(\d+)", layer_line.replace("H=W=", "H=").replace("R=S=", "R=")
                         .replace("P=Q=", "P=").replace("Hstride=Wstride=", "stride=")
                         .replace("Hpad=Wpad=", "pad=")))
    n, c, m, h, r, p = (int(kv[k]) for k in ("N", "C", "M", "H", "R", "P"))
    stride, pad = int(kv["stride"]), int(kv["pad"])
    peer: dict[str, float] = {}
    rows = csv.DictReader(line for line in text.splitlines() if line and not line.startswith("#"))
    for row in rows:
        level = TIMELOOP_LEVELS[row["level"]]
        peer[level] = peer.get(level, 0.0) + float(row["energy_pj"])
    net, batch = conv_layer("default_problem", n, c, (h, h), m, (r, r), (stride, stride),
                            (pad, pad), (pad, pad))
    if net.macs * batch != n * m * c * p * p * r * r:
        raise ValueError("Timeloop layer: MAC count differs from N*M*C*P*Q*R*S")
    return [{"layer": "default_problem (conv)", "shape": f"K{m} C{c} {p}x{p} F{r}x{r} s{stride}",
             "peer": peer, "ours": hwprune_levels(net, batch, PEERS / "timeloop_eyeriss_like.toml")}]


def peer_tables(title: str, records: list[dict]) -> tuple[str, dict]:
    """Markdown for one peer run: per layer, per layer and level, per level over the
    network, and the totals; plus a summary of the targets met."""
    # The mirror's order (MACs, then its levels innermost first), then any peer-only level.
    levels = list(dict.fromkeys(["MAC"] + [lv for rec in records for lv in (*rec["ours"], *rec["peer"])]))
    out = [f"### {title}", "",
           "| layer | shape | peer pJ | hwprune pJ | error | ±20% |",
           "| --- | --- | ---: | ---: | ---: | --- |"]
    layers_ok = 0
    tot_peer = tot_ours = 0.0
    for rec in records:
        p, o = sum(rec["peer"].values()), sum(rec["ours"].values())
        tot_peer, tot_ours = tot_peer + p, tot_ours + o
        e = _err(o, p)
        layers_ok += abs(e) <= TARGET_LAYER
        out.append(f"| {rec['layer']} | {rec['shape']} | {p:.4g} | {o:.4g} | {e:+.1%} | "
                   f"{_mark(e, TARGET_LAYER)} |")
    e_tot = _err(tot_ours, tot_peer)
    out.append(f"| **total** | | {tot_peer:.4g} | {tot_ours:.4g} | {e_tot:+.1%} | "
               f"{_mark(e_tot, TARGET_TOTAL)} (±10%) |")
    out += ["", "Per memory level and layer (error of hwprune; peer pJ / hwprune pJ):", "",
            "| layer | " + " | ".join(levels) + " |", "| --- |" + " ---: |" * len(levels)]
    # A level the peer does not have (the mirrors' free NoC): shown, not scored.
    peer_levels = {lv for rec in records for lv in rec["peer"]}
    cells_ok = cells = 0
    for rec in records:
        row = []
        for lv in levels:
            p, o = rec["peer"].get(lv, 0.0), rec["ours"].get(lv, 0.0)
            if lv not in peer_levels:
                row.append(f"n/a ({o:.3g})")
                continue
            if p == 0 and o == 0:
                row.append("–")
                continue
            e = _err(o, p)
            cells += 1
            cells_ok += abs(e) <= TARGET_LEVEL
            flag = "" if abs(e) <= TARGET_LEVEL else " ✗"
            row.append(f"{e:+.0%}{flag} ({p:.3g} / {o:.3g})")
        out.append(f"| {rec['layer']} | " + " | ".join(row) + " |")
    out += ["", "Per memory level over the network:", "",
            "| level | peer pJ | hwprune pJ | error | ±25% |", "| --- | ---: | ---: | ---: | --- |"]
    net_levels_ok = 0
    for lv in levels:
        p = sum(rec["peer"].get(lv, 0.0) for rec in records)
        o = sum(rec["ours"].get(lv, 0.0) for rec in records)
        if lv not in peer_levels:
            out.append(f"| {lv} | (none) | {o:.4g} | n/a | not scored |")
            continue
        e = _err(o, p)
        net_levels_ok += abs(e) <= TARGET_LEVEL
        out.append(f"| {lv} | {p:.4g} | {o:.4g} | {e:+.1%} | {_mark(e, TARGET_LEVEL)} |")
    summary = {"peer": title, "total_error": e_tot, "total_pass": abs(e_tot) <= TARGET_TOTAL,
               "layers_pass": f"{layers_ok}/{len(records)}", "level_cells_pass": f"{cells_ok}/{cells}",
               "network_levels_pass": f"{net_levels_ok}/{len(peer_levels)}"}
    out += ["", f"Targets: total {'pass' if summary['total_pass'] else 'FAIL'} ({e_tot:+.1%}); layers within "
            f"±20%: {summary['layers_pass']}; levels within ±25%: {summary['level_cells_pass']} "
            f"(layer x level), {summary['network_levels_pass']} (network)."]
    return "\n".join(out), summary


def _hwprune_revision() -> str:
    try:
        # The last commit that changed the model (hwprune/), not the repository's HEAD.
        head = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h", "--", "hwprune"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "hwprune"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + (" with uncommitted changes under hwprune/" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def zigzag_results(args) -> tuple[list[tuple[str, str, dict]], str | None]:
    """[(workload, hardware, result)] from --zigzag-json files or a live ZigZag run, and
    a one-line reason when ZigZag is skipped."""
    if args.no_zigzag:
        return [], "ZigZag skipped (--no-zigzag)"
    if args.zigzag_json:
        found = []
        for path in args.zigzag_json:
            result = json.loads(Path(path).read_text())
            workload = Path(result["workload"]).stem
            hardware = Path(result["accelerator"]).stem
            found.append((workload, hardware, result))
        return found, None
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from zigzag_peer import run_zigzag, zigzag_import_problem

    problem = zigzag_import_problem()
    if problem:
        return [], (f"ZigZag skipped: {problem}; or pass --zigzag-json FILE from "
                    "benchmarks/zigzag_peer.py --out")
    found = []
    for workload in args.zigzag_workloads:
        for hardware in ZIGZAG_MIRRORS:
            print(f"running ZigZag {hardware} on {workload} ...", file=sys.stderr)
            found.append((workload, hardware, run_zigzag(workload, hardware)))
    return found, None


def peers_section(args) -> str:
    """Every peer's tables and the summary, as markdown."""
    parts = [f"hwprune {_hwprune_revision()}; batch 1; 8-bit weights and inputs, 16-bit partial sums.", ""]
    summaries = []
    runs, skipped = zigzag_results(args)
    if skipped:
        print(skipped, file=sys.stderr)
        parts += [f"_{skipped}_", ""]
    for workload, hardware, result in runs:
        title = (f"ZigZag {result.get('version')} {hardware} on {workload} "
                 f"(mirror: benchmarks/peers/{ZIGZAG_MIRRORS[hardware][0]})")
        text, summary = peer_tables(title, zigzag_records(result, hardware))
        parts += [text, ""]
        other = [lay for lay in result["per_layer"] if lay["shape"]["type"] not in ("Conv", "Gemm")]
        if other:
            kinds = ", ".join(sorted({lay["shape"]["type"] for lay in other}))
            parts += [f"ZigZag also priced {len(other)} {kinds} layers "
                      f"({sum(lay['energy_pj'] for lay in other):.4g} pJ), not compared "
                      "(only Conv and Gemm layers are).", ""]
        summaries.append(summary)
    if args.no_timeloop:
        print("Timeloop skipped (--no-timeloop)", file=sys.stderr)
        parts += ["_Timeloop skipped (--no-timeloop)_", ""]
    else:
        title = ("Timeloop eyeriss_like reference layer (figures: benchmarks/peers/timeloop/; "
                 "mirror: benchmarks/peers/timeloop_eyeriss_like.toml)")
        text, summary = peer_tables(title, timeloop_records())
        parts += [text, ""]
        summaries.append(summary)
    parts += ["### Summary", "", "| peer | total error | total ±10% | layers ±20% | levels ±25% "
              "(layer x level) | levels ±25% (network) |", "| --- | ---: | --- | --- | --- | --- |"]
    for s in summaries:
        parts.append(f"| {s['peer']} | {s['total_error']:+.1%} | {'pass' if s['total_pass'] else 'FAIL'} | "
                     f"{s['layers_pass']} | {s['level_cells_pass']} | {s['network_levels_pass']} |")
    return "\n".join(parts)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-yang", action="store_true", help="skip the Yang et al. table")
    ap.add_argument("--no-peers", action="store_true", help="skip the ZigZag and Timeloop section")
    ap.add_argument("--no-zigzag", action="store_true", help="skip ZigZag (says so in one line)")
    ap.add_argument("--no-timeloop", action="store_true", help="skip Timeloop (says so in one line)")
    ap.add_argument("--zigzag-json", nargs="+", metavar="FILE",
                    help="ZigZag results written by benchmarks/zigzag_peer.py --out (instead of running it)")
    ap.add_argument("--zigzag-workloads", nargs="+", choices=ZIGZAG_WORKLOADS, default=list(ZIGZAG_WORKLOADS))
    ap.add_argument("--out", type=Path, default=PEERS_MD, help=f"peer tables file (default {PEERS_MD})")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    if not args.no_yang:
        print(yang_table())
    if not args.no_peers:
        text = peers_section(args)
        print("\n## Peers: ZigZag and Timeloop on mirrored hierarchies\n")
        print(text)
        write_atomic(args.out, "# Energy against ZigZag and Timeloop (mirrored hierarchies)\n\n"
                     "Written by `python benchmarks/validate_energy.py`.\n\n" + text + "\n")
        print(f"\n(tables written to {args.out})", file=sys.stderr)
    print(f"\n({time.perf_counter() - start:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
