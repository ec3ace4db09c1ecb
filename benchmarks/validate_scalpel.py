"""Scalpel's device split, reproduced with hwprune's simulators on Scalpel's own networks.

Scalpel (Yu et al., ISCA 2017) found that which pruning pays off depends on the
hardware: SIMD-aware weight pruning on a microcontroller, node pruning on a GPU (where
fine-grained sparsity is slower than dense), and on a desktop CPU SIMD-aware pruning on
fully connected layers and node pruning on convolutions. This script prices Scalpel's
published pruned structures on hwprune's built-in ``lenet-300-100``, ``lenet-5``,
``cifar10-quick`` (Scalpel's ConvNet), ``nin-cifar10`` and ``alexnet`` with hwprune's
own pipeline (:func:`hwprune.evaluate.evaluate` with a :class:`~hwprune.evaluate.Plan`,
so node pruning also removes the next layer's inputs), on ``cortex-m4``, ``core-i7``,
``titan-x`` and ``eyeriss``.

Densities (all from :mod:`hwprune.studies.published`; nothing here is fitted):

* **traditional** (``fine``, CSR): Han et al. 2015's per-layer weight densities
  (LeNet-300-100, LeNet-5, AlexNet). ConvNet and NIN have none published: each of their
  layers takes the median of Han's densities of the same kind (conv, hidden fc, last
  layer) over the three networks, marked ``han-median``.
* **simd** (SIMD-aware, group = the device's SIMD lanes): the traditional density times
  :func:`hwprune.studies.density_model.group_ratio` of the group width (Mao et al.'s
  median ratios). Scalpel's paper gives no per-layer SIMD-aware densities; its release
  gives whole-network ones at group width 8 for the LeNets, printed beside for reference.
* **node**: Scalpel's released node-pruned unit counts; the last layer keeps its outputs.
* **scalpel**: the combination Scalpel applies per device class: simd on the mcu, node on
  conv and simd on fc layers on the cpu, node on the gpu (none on the accelerator).

Per device and network it prints the network speedup over dense of each, beside
Scalpel's published mean speedups (abstract: the per-network figures are not given
there); per layer the speedup of each configuration (the layer's dense latency / its
latency in that network configuration), the fastest, the latency model's bound term, and
what ``granularity``'s choice (:func:`hwprune.studies.choice.choose`, fed the same
per-layer densities) picks. Then the targets, PASS or MISS, each with its margin.

Run:  python benchmarks/validate_scalpel.py [--devices ...] [--networks ...] [--batch B]
      [--no-choice] [--out benchmarks/results/scalpel.txt]
It is rerunnable: every number comes from the current latency models.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import hwprune
from hwprune.errors import HwpruneError
from hwprune.evaluate import LayerPlan, Plan, evaluate
from hwprune.latency.work import KernelShape
from hwprune.schemes import FINE, NODE, SIMD
from hwprune.studies import density_model, published
from hwprune.studies.choice import Option, choose

ROOT = Path(__file__).resolve().parents[1]
NETWORKS = ("lenet-300-100", "lenet-5", "cifar10-quick", "nin-cifar10", "alexnet")
DEVICES = ("cortex-m4", "core-i7", "titan-x", "eyeriss")
CONFIGS = ("fine", "simd", "node", "scalpel")
SCALPEL_NAME = {"lenet-300-100": "LeNet-300-100", "lenet-5": "LeNet-5", "cifar10-quick": "ConvNet",
                "nin-cifar10": "NIN", "alexnet": "AlexNet"}


def _han_medians() -> dict[str, float]:
    """Median of Han et al.'s densities per layer role: conv, hidden fc, last layer."""
    roles: dict[str, list[float]] = {"conv": [], "fc": [], "last": []}
    for net_name, layers in published.HAN_FINE.items():
        net = hwprune.network(net_name)
        last = net.weighted_layers[-1].name
        for layer, d in layers.items():
            role = "last" if layer == last else ("fc" if KernelShape.of(net[layer]).is_fc else "conv")
            roles[role].append(d)
    return {role: statistics.median(v) for role, v in roles.items()}


def fine_densities(net) -> dict[str, tuple[float, str]]:
    """Per layer: (traditional density, its source: ``han`` or ``han-median``)."""
    han = published.HAN_FINE.get(net.name)
    if han is not None:
        return {layer: (d, "han") for layer, d in han.items()}
    med = _han_medians()
    last = net.weighted_layers[-1].name
    out = {}
    for lay in net.weighted_layers:
        role = "last" if lay.name == last else ("fc" if KernelShape.of(lay).is_fc else "conv")
        out[lay.name] = (med[role], "han-median")
    return out


def plans(net, dev) -> dict[str, Plan]:
    """The four configurations of the module docstring."""
    fine = {name: d for name, (d, _) in fine_densities(net).items()}
    lanes = dev.compute.simd_lanes
    simd = {}
    for lay in net.weighted_layers:
        g = SIMD.group_width(KernelShape.of(lay).kernel, lanes)
        simd[lay.name] = min(1.0, fine[lay.name] * density_model.group_ratio(g))
    node = published.node_kept(net.name)
    is_fc = {lay.name: KernelShape.of(lay).is_fc for lay in net.weighted_layers}
    out = {
        "fine": Plan({n: LayerPlan(FINE, d) for n, d in fine.items()}),
        "simd": Plan({n: LayerPlan(SIMD, d) for n, d in simd.items()}),
        "node": Plan({n: LayerPlan(NODE, u) for n, u in node.items()}),
    }
    cls = dev.device_class
    if cls == "mcu":
        out["scalpel"] = out["simd"]
    elif cls == "gpu":
        out["scalpel"] = out["node"]
    elif cls == "cpu":
        mixed = {n: LayerPlan(NODE, node[n]) for n in node if not is_fc[n]}
        mixed.update({n: LayerPlan(SIMD, d) for n, d in simd.items() if is_fc[n]})
        out["scalpel"] = Plan(mixed)
    return out


def options(net, plan_by_config: dict[str, Plan]) -> dict[str, list[Option]]:
    """Per layer, the published densities as granularity's candidates."""
    per_layer: dict[str, list[Option]] = {}
    for lay in net.weighted_layers:
        opts = []
        for cfg in ("fine", "simd", "node"):
            lp = plan_by_config[cfg].layers.get(lay.name)
            if lp is not None and lp.density < 1:
                opts.append(Option(lp.scheme, lp.density))
        per_layer[lay.name] = opts
    return per_layer


def in_context(net, dev, batch: int) -> list[tuple[str, str, str, dict[str, float]]]:
    """Per layer, which of fine, simd and node (not on the last layer) wins when the
    other layers keep Scalpel's cpu plan (node on conv, simd on fc): the seconds of the
    layer and every layer after it (so removing units is credited with the next
    layer's inputs), for each. Returns (layer, kind, winner, seconds per scheme)."""
    cfg = plans(net, dev)
    base = cfg["scalpel"] if "scalpel" in cfg else cfg["fine"]
    names = [lay.name for lay in net.weighted_layers]
    out = []
    for i, name in enumerate(names):
        t = {}
        for c in ("fine", "simd", "node"):
            lp = cfg[c].layers.get(name)
            if lp is None:
                continue
            ev = evaluate(net, dev, base.with_layer(name, lp), batch=batch, layers=names[i:])
            t[c] = ev.total.latency_s
        out.append((name, ev[name].kind, min(t, key=t.get), t))
    return out


def run(devices, networks, batch: int, with_choice: bool, out) -> list[tuple[str, bool, str]]:
    def p(line: str = "") -> None:
        print(line, file=out, flush=True)

    targets: list[tuple[str, bool, str]] = []
    speed: dict[tuple[str, str], dict[str, float]] = {}
    layer_win: dict[tuple[str, str], list[tuple[str, str, str, dict[str, float]]]] = {}  # in context
    p("# Scalpel's device split, simulated by hwprune")
    p()
    p("Densities: traditional = Han et al. 2015 per layer (han-median: median of Han's "
      "densities of the same layer kind); simd = traditional x density_model.group_ratio(SIMD "
      "lanes) (Mao et al. 2017 medians); node = Scalpel's released node-pruned unit counts; "
      f"batch {batch}.")
    lanes = {d: hwprune.device(d).compute.simd_lanes for d in devices}
    p("SIMD ratio per device: " + ", ".join(
        f"{d} (g={g}) x{density_model.group_ratio(g):.3f}" for d, g in lanes.items()))
    p("Scalpel's release, SIMD-aware at g=8 (whole network, reference only): " + ", ".join(
        f"{n} {r.density:.3f} (Han fine {published.HAN_NETWORK_DENSITY[n]:.3f})"
        for n, r in published.SCALPEL_SIMD.items()))
    p()
    for dev_name in devices:
        try:
            dev = hwprune.device(dev_name)
        except HwpruneError as e:
            p(f"## {dev_name}: not priced ({type(e).__name__}: {e})")
            p()
            continue
        pub = published.SCALPEL_MEAN_SPEEDUP.get(dev.device_class)
        p(f"## {dev_name} ({dev.device_class})")
        p()
        p("| network | weights kept fine / simd / node | fine | simd | node | scalpel |")
        p("|---|---|---|---|---|---|")
        for net_name in networks:
            t0 = time.time()
            net = hwprune.network(net_name)
            try:
                dense = evaluate(net, dev, batch=batch)
                cfg_plans = plans(net, dev)
                evs = {c: evaluate(net, dev, pl, batch=batch) for c, pl in cfg_plans.items()}
            except HwpruneError as e:
                p(f"| {net_name} | not priced ({type(e).__name__}: {e}) | | | | |")
                continue
            sp = {c: dense.total.latency_s / ev.total.latency_s for c, ev in evs.items()}
            speed[(dev_name, net_name)] = sp
            kept = " / ".join(f"{evs[c].weights_kept_fraction:.3f}" for c in ("fine", "simd", "node"))
            cells = " | ".join(f"{sp[c]:.2f}x" if c in sp else "-" for c in CONFIGS)
            p(f"| {net_name} | {kept} | {cells} |")
            rows = []
            for lay in net.weighted_layers:
                d_lat = dense[lay.name].cost.latency_s
                ls = {c: d_lat / evs[c][lay.name].cost.latency_s for c in ("fine", "simd", "node")}
                best = max(ls, key=ls.get)
                rows.append((lay.name, evs["fine"][lay.name].kind, best, ls,
                             {c: evs[c][lay.name].latency.bound for c in ls}))
            ctx = in_context(net, dev, batch)
            layer_win[(dev_name, net_name)] = ctx
            ctx_best = {n: b for n, _, b, _ in ctx}
            picks = {}
            if with_choice:
                ch = choose(net, dev, options(net, cfg_plans))
                picks = {le.layer: f"{le.scheme.name}" + (f" {le.density:.3f}" if le.scheme.prunes else "")
                         for le in ch.evaluation}
                speed[(dev_name, net_name)]["granularity"] = (
                    dense.total.latency_s / ch.evaluation.total.latency_s)
            layer_lines = [f"  {n:7s} {k:4s} " + "  ".join(f"{c} {v:6.2f}x ({bd[c]})" for c, v in ls.items())
                           + f"  fastest {b}; in context {ctx_best[n]}"
                           + (f"; granularity picks {picks[n]}" if picks else "")
                           for n, k, b, ls, bd in rows]
            _pending.setdefault(dev_name, []).append(
                (net_name, layer_lines, speed[(dev_name, net_name)].get("granularity"), time.time() - t0))
        if pub:
            for idx, label in ((0, "scalpel"), (1, "fine")):
                done = [n for n in networks if (dev_name, n) in speed]
                if not done:
                    continue
                mean = statistics.mean(speed[(dev_name, n)][label] for n in done)
                p(f"| mean (arithmetic) {label} | | | | | {mean:.2f}x (Scalpel's paper: {pub[idx]:.2f}x) |")
        p()
        p("Per layer: its speedup over dense in each network configuration (fine, simd, node "
          "everywhere) with the latency model's bound term; the fastest of the three; 'in "
          "context': the winner when only this layer's scheme changes in the device's Scalpel "
          "plan (all fine on the accelerator), timed over this layer and the ones after it; "
          "granularity's pick (choose() fed the same per-layer densities):")
        p()
        p("```")
        for net_name, lines, gran, secs in _pending.pop(dev_name, []):
            extra = f"; granularity's plan {gran:.2f}x over dense" if gran else ""
            p(f"{net_name}{extra}  [{secs:.1f} s]")
            for line in lines:
                p(line)
        p("```")
        p()

    # --- targets ---------------------------------------------------------------------
    def have(*keys):
        return all(k in speed for k in keys)

    for net_name in ("lenet-300-100", "lenet-5"):
        if have(("cortex-m4", net_name)):
            s = speed[("cortex-m4", net_name)]
            targets.append((f"cortex-m4 {net_name}: simd beats traditional",
                            s["simd"] > s["fine"],
                            f"simd {s['simd']:.2f}x vs fine {s['fine']:.2f}x "
                            f"(ratio {s['simd'] / s['fine']:.2f})"))
    if have(("titan-x", "alexnet")):
        s = speed[("titan-x", "alexnet")]
        targets.append(("titan-x alexnet: traditional slower than dense", s["fine"] < 1,
                        f"fine {s['fine']:.2f}x"))
        other = max(s["fine"], s["simd"])
        targets.append(("titan-x alexnet: node pruning best", s["node"] > other,
                        f"node {s['node']:.2f}x vs best other {other:.2f}x"))
    if "titan-x" in devices:
        for net_name in networks:
            if net_name == "alexnet" or not have(("titan-x", net_name)):
                continue
            s = speed[("titan-x", net_name)]
            other = max(s["fine"], s["simd"])
            targets.append((f"titan-x {net_name}: node pruning best (also)", s["node"] > other,
                            f"node {s['node']:.2f}x vs best other {max(s['fine'], s['simd']):.2f}x"))
    contests = {n: layer_win[("core-i7", n)] for n in networks if ("core-i7", n) in layer_win}
    if contests:
        for kind, want in (("fc", "simd"), ("conv", "node")):
            hits, misses = 0, []
            for net_name, contest in contests.items():
                for name, k, best, t in contest:
                    if k != kind or want not in t:
                        continue           # the last layer keeps its units: node is no candidate
                    if best == want:
                        hits += 1
                    else:
                        misses.append(f"{net_name}/{name} {best} ({want} {t[want] / t[best]:.2f}x "
                                      "slower)")
            total = hits + len(misses)
            targets.append((f"core-i7: {want} wins on every {kind} layer (in Scalpel's cpu plan)",
                            not misses,
                            f"{hits}/{total} layers" + ("; misses: " + ", ".join(misses) if misses else "")))
    p("## Targets")
    p()
    if not targets:
        p("- (no target could be checked: its device or network was not priced)")
    for name, ok, detail in targets:
        p(f"- {'PASS' if ok else 'MISS'}  {name}: {detail}")
    return targets


_pending: dict[str, list] = {}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", nargs="+", default=list(DEVICES))
    ap.add_argument("--networks", nargs="+", default=list(NETWORKS))
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--no-choice", action="store_true", help="skip granularity's per-layer choice")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "scalpel.txt"),
                    help="also write the output here ('-' for stdout only)")
    args = ap.parse_args(argv)
    for n in args.networks:
        if n not in published.SCALPEL_NODE:
            ap.error(f"no published Scalpel structure for {n!r}; accepted: {', '.join(NETWORKS)}")

    class Tee:
        def __init__(self, *streams):
            self.streams = streams

        def write(self, s):
            for st in self.streams:
                st.write(s)

        def flush(self):
            for st in self.streams:
                st.flush()

    if args.out == "-":
        run(args.devices, args.networks, args.batch, not args.no_choice, sys.stdout)
        return 0
    tmp = Path(args.out).with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        run(args.devices, args.networks, args.batch, not args.no_choice, Tee(sys.stdout, f))
    tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
