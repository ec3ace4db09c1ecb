"""Run ZigZag (PyPI ``zigzag-dse``): its AlexNet and ResNet-18 on its eyeriss_like and tpu_like examples.

``run_zigzag(workload, hardware)`` returns, per layer, the shape ZigZag evaluated and its
cost model's energy per memory level and operand (``benchmarks/validate_energy.py``
compares them with hwprune on the mirrored profiles in ``benchmarks/peers/``);
``run_zigzag_alexnet`` is the eyeriss_like AlexNet run described below, which
``benchmarks/bench_energy.py`` times. ``tpu_like`` runs with ZigZag's own
``inputs/mapping/tpu_like.yaml``; ``resnet18`` is ``inputs/workload/resnet18.onnx``
(torchvision's ResNet-18 shapes, 20 Conv + 1 Gemm).

This is the *peer* side of the hwprune benchmark: it times KU Leuven's ZigZag
design-space-exploration tool on the same kind of job hwprune's loop-nest energy
model does, so both can be timed in one run. ``zigzag-dse`` is an optional
dependency: install it with ``pip install 'hwprune[bench]'`` (zigzag-dse 3.9.1 and
the ``six`` it imports undeclared).
Nothing is downloaded at run time. Every input file ships inside the installed
``zigzag`` package (``<site-packages>/zigzag/inputs/...``):

* workload    ``zigzag/inputs/workload/alexnet.onnx``. This is the workload
  ZigZag's "Getting Started" page uses for its first run. It is the BVLC/Caffe
  AlexNet (exported by onnx-caffe2, opset 12), not torchvision's model. The
  differences: conv2, conv4 and conv5 are *grouped* (group=2, which ZigZag
  models as a loop dimension G=2); conv1 has no padding, so its output is
  96x54x54; there are LRN layers; and there are 5 Conv + 3 Gemm layers.
  Batch size is 1 (input 1x3x224x224). ZigZag evaluates only the Conv and Gemm
  nodes. Relu, LRN, MaxPool, Reshape, Dropout and Softmax become zero-cost
  dummy nodes. The ONNX file holds only shapes (its weights are external data
  that is not shipped), and that is all ZigZag needs. Precision is the ONNX
  parser's default: 8-bit weights and activations, and 16-bit partial sums.
* accelerator ``zigzag/inputs/hardware/eyeriss_like.yaml``. A 14x12 MAC array
  at 0.5 pJ/MAC; register files of 64 B (I), 64 B (W) and 16 B (O); SRAMs of
  8 KB (O), 64 KB (W) and 1 MB (I, O); and DRAM. Memory costs are given per
  access of one full port word.
* mapping     ``zigzag/inputs/mapping/default.yaml``. ZigZag ships no mapping
  file made for Eyeriss: every other packaged mapping names a different
  accelerator. ``default.yaml`` is the generic fallback entry. It links the
  memory operands as O->O, W->I2, I->I1, which matches the Eyeriss-like YAML.
  It asks for the spatial unrolling K32 on D1 and C32 on D2. ZigZag itself
  shrinks that to what fits the 14x12 array and the layer (for conv1 it
  becomes K~13.7 with an uneven split, and C3), and it logs a WARNING each
  time it does so.

Settings: the documented API ``zigzag.api.get_hardware_performance_zigzag``.
We pass ``opt="energy"``, as ZigZag's own ``example.py`` does (the API's bare
default is ``"latency"``), because hwprune is an energy model.
``dump_folder`` is a fresh temporary directory that is deleted afterwards.
``loma_show_progress_bar=False`` only turns off the tqdm bar. Everything else
is left at the installed API defaults: the LOMA temporal-mapping search
(``temporal_mapping_search_engine="loma"``) with ``lpf_limit=6``,
``temporal_mapping_type="uneven"`` and ``nb_spatial_mappings_generated=3``
(unused here, because default.yaml fixes both array dimensions), with no
in-memory compute, no inter-layer data locality and no mixed spatial mappings.
The defaults actually in force are read with ``inspect`` and returned.

Units: ZigZag does not convert energy. It adds up the numbers in the hardware
YAML, which states its MAC cost in pJ, so ``energy_pj`` is in pJ as the YAML
gives it. ``latency_cycles`` is ZigZag's ``latency_total2`` in cycles, the same
value the API returns.

``layers=N`` keeps the ONNX graph up to and including the N-th Conv/Gemm node.
The truncated ModelProto is built in memory and handed to the same API call.
ZigZag's mapping file has no layer filter, so this is the way to get a quick
run.

ZigZag is logged at WARNING level during the run: its per-layer INFO chatter
is hidden, but the spatial-unrolling warnings above still show. Each layer's
wall time comes from the timestamps of ZigZag's own "Processing <layer>..."
log records (caught without being printed). It includes that layer's share of
the result-saving stages.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import re
import sys
import tempfile
import time
from typing import Any, Iterator

WORKLOAD_REL = os.path.join("inputs", "workload", "alexnet.onnx")
ACCELERATOR_REL = os.path.join("inputs", "hardware", "eyeriss_like.yaml")
MAPPING_REL = os.path.join("inputs", "mapping", "default.yaml")
# The packaged workloads (inputs/workload/<name>.onnx) and example accelerators with the
# mapping file each is run with: tpu_like has its own mapping (K32 on D1, C32 on D2,
# memory operands O->O, W->I2, I->I1), eyeriss_like has none and uses default.yaml.
WORKLOADS = ("alexnet", "resnet18")
HARDWARE_MAPPINGS = {"eyeriss_like": "default.yaml", "tpu_like": "tpu_like.yaml"}
OPT = "energy"  # as in ZigZag's example.py
_COMPUTE_OPS = ("Conv", "QLinearConv", "Gemm", "MatMul")  # the ops ZigZag's ONNX parser evaluates

_INSTALL_HINT = "ZigZag is not installed: pip install zigzag-dse==3.9.1 six"


def zigzag_import_problem() -> str | None:
    """None if ``zigzag-dse`` (and its API module) imports; otherwise why not, in one
    line: not installed, or installed but failing to import (a missing dependency such
    as ``six``, a broken install), with the exception."""
    try:
        import zigzag.api  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name in ("zigzag", "zigzag.api"):
            return f"{_INSTALL_HINT} (or pip install 'hwprune[bench]')"
        return (f"ZigZag is installed but does not import: {type(exc).__name__}: {exc} "
                "(pip install 'hwprune[bench]' installs what it needs)")
    except Exception as exc:  # a broken dependency inside zigzag
        return f"ZigZag is installed but does not import: {type(exc).__name__}: {exc}"
    return None


def zigzag_available() -> bool:
    """True if ``zigzag-dse`` (and its API module) imports."""
    return zigzag_import_problem() is None


def _require_zigzag():
    try:
        import zigzag
        import zigzag.api
    except ImportError as exc:
        raise ImportError(f"{_INSTALL_HINT} ({exc})") from exc
    return zigzag


def zigzag_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("zigzag-dse")
    except Exception:
        try:
            import zigzag

            return getattr(zigzag, "__version__", None)
        except ImportError:
            return None


def example_paths(workload: str = "alexnet", hardware: str = "eyeriss_like") -> dict[str, str]:
    """Absolute paths of the packaged example files that are used: ``workload`` one of
    :data:`WORKLOADS`, ``hardware`` one of :data:`HARDWARE_MAPPINGS`."""
    if workload not in WORKLOADS:
        raise ValueError(f"unknown ZigZag workload {workload!r}; packaged: {', '.join(WORKLOADS)}")
    if hardware not in HARDWARE_MAPPINGS:
        raise ValueError(f"unknown ZigZag hardware {hardware!r}; used here: {', '.join(HARDWARE_MAPPINGS)}")
    zigzag = _require_zigzag()
    root = os.path.dirname(zigzag.__file__)
    paths = {
        "workload": os.path.join(root, "inputs", "workload", f"{workload}.onnx"),
        "accelerator": os.path.join(root, "inputs", "hardware", f"{hardware}.yaml"),
        "mapping": os.path.join(root, "inputs", "mapping", HARDWARE_MAPPINGS[hardware]),
    }
    missing = [p for p in paths.values() if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(
            f"zigzag-dse {zigzag_version()} does not ship the expected example files: {missing}"
        )
    return paths


def _truncated_model(workload_path: str, layers: int):
    """ONNX ModelProto holding the graph up to and including the `layers`-th Conv/Gemm node."""
    import onnx

    model = onnx.load(workload_path, load_external_data=False)  # as ZigZag loads it: shapes only
    nodes = list(model.graph.node)
    compute_idx = [i for i, n in enumerate(nodes) if n.op_type in _COMPUTE_OPS]
    if layers < 1:
        raise ValueError("layers must be >= 1")
    if layers >= len(compute_idx):
        return model, len(compute_idx)
    keep = nodes[: compute_idx[layers - 1] + 1]
    del model.graph.node[:]
    model.graph.node.extend(keep)
    return model, layers


class _LayerTimer(logging.Handler):
    """Catches ZigZag's 'Processing <layer>...' records (not printed) to time each layer."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.starts: list[tuple[str, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if msg.startswith("Processing"):
            name = msg[len("Processing") :].strip().rstrip(".").strip()
            self.starts.append((name, time.perf_counter()))


@contextlib.contextmanager
def _quiet_zigzag(level: int = logging.WARNING) -> Iterator[_LayerTimer]:
    """Keep ZigZag at `level` during the call, and put everything back afterwards.

    The API calls ``logging.basicConfig(level=INFO)``. That call does nothing
    when the root logger already has a handler, so one is added for the
    duration of the call if the root logger has none.
    """
    root = logging.getLogger()
    saved_root_level = root.level
    temp_handler = None
    if not root.handlers:
        temp_handler = logging.StreamHandler(sys.stderr)
        temp_handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
        root.addHandler(temp_handler)
    root.setLevel(level)

    timer = _LayerTimer()
    wl_logger = logging.getLogger("zigzag.stages.workload_iterator")
    saved_wl = (wl_logger.level, wl_logger.propagate)
    wl_logger.setLevel(logging.INFO)
    wl_logger.propagate = False  # its INFO line is caught for timing, never printed
    wl_logger.addHandler(timer)
    try:
        yield timer
    finally:
        wl_logger.removeHandler(timer)
        wl_logger.setLevel(saved_wl[0])
        wl_logger.propagate = saved_wl[1]
        root.setLevel(saved_root_level)
        if temp_handler is not None:
            root.removeHandler(temp_handler)


def _api_defaults(func) -> dict[str, Any]:
    sig = inspect.signature(func)
    keys = (
        "temporal_mapping_search_engine",
        "temporal_mapping_type",
        "lpf_limit",
        "nb_spatial_mappings_generated",
        "in_memory_compute",
        "exploit_data_locality",
        "enable_mix_spatial_mapping",
    )
    return {k: sig.parameters[k].default for k in keys if k in sig.parameters}


def _stride(layer, out_dim: str, filt_dim: str) -> int:
    """The stride of ``out_dim`` in ZigZag's dimension relation ``ix=4*ox+1*fx`` (1 if none)."""
    for rel in getattr(layer, "dimension_relations", None) or []:
        text = str(rel).replace(" ", "").lower()
        match = re.search(rf"=(\d+)\*{out_dim.lower()}\+(\d+)\*{filt_dim.lower()}", text)
        if match:
            return int(match.group(1))
    return 1


def layer_shape(layer) -> dict[str, Any]:
    """The shape ZigZag evaluated for one layer, from its ``LayerNode``: loop bounds
    (``B``, ``K``, ``C``, ``G``, ``OX``, ``OY``, ``FX``, ``FY``; K and C per group), the
    input extent ``input`` = [IY, IX] (its ``pr_layer_dim_sizes``, the ONNX input shape;
    absent for Gemm), strides [y, x], padding [[top, bottom], [left, right]] and bits
    per operand (``operand_precision``: ``W``, ``I``, ``O`` = partial sums, ``O_final``)."""
    dims = {str(d): int(v) for d, v in layer.layer_dim_sizes.items()}
    pr_sizes = {str(d): int(v) for d, v in getattr(layer, "pr_layer_dim_sizes", {}).items()}
    pad_data = {str(d): tuple(int(p) for p in v) for d, v in getattr(layer.padding, "data", {}).items()}
    shape: dict[str, Any] = {
        "type": str(getattr(layer, "type", "")),
        "dims": dims,
        "stride": [_stride(layer, "oy", "fy"), _stride(layer, "ox", "fx")],
        "padding": [list(pad_data.get("IY", (0, 0))), list(pad_data.get("IX", (0, 0)))],
        "precision_bits": {str(k): int(v) for k, v in layer.operand_precision.data.items()},
        "macs": int(layer.total_mac_count),
    }
    if "IX" in pr_sizes and "IY" in pr_sizes:
        shape["input"] = [pr_sizes["IY"], pr_sizes["IX"]]
    return shape


def memory_breakdown(cme) -> dict[str, dict[str, Any]]:
    """Per memory level (ZigZag's memory instance name), the energy ZigZag's cost model
    charged there for one layer, in the hardware YAML's unit (pJ): ``{"energy_pj": sum,
    "operands": {"W"|"I"|"O": energy}, "directions": {"rd_out_to_low": ..., ...}}``.

    Read from ``CostModelEvaluation.mem_energy_breakdown`` (per layer operand, a list
    over the memory levels that hold it, innermost first) and
    ``mem_energy_breakdown_further`` (the same split by data direction); the level of
    each entry is ``accelerator.memory_hierarchy.get_memory_levels(mem_op)``, the list
    ``calc_memory_energy_cost`` walks (zigzag/cost_model/cost_model.py)."""
    hierarchy = cme.accelerator.memory_hierarchy
    levels: dict[str, dict[str, Any]] = {}
    for layer_op, energies in cme.mem_energy_breakdown.items():
        mem_op = cme.memory_operand_links.layer_to_mem_op(layer_op)
        mem_levels = hierarchy.get_memory_levels(mem_op=mem_op)
        further = cme.mem_energy_breakdown_further[layer_op]
        for mem, energy, split in zip(mem_levels, energies, further):
            entry = levels.setdefault(mem.name, {"energy_pj": 0.0, "operands": {}, "directions": {}})
            entry["energy_pj"] += float(energy)
            entry["operands"][str(layer_op)] = float(energy)
            for direction, value in split.data.items():
                key = str(getattr(direction, "value", direction))
                entry["directions"][key] = entry["directions"].get(key, 0.0) + float(value)
    return levels


def run_zigzag(workload: str = "alexnet", hardware: str = "eyeriss_like", layers: int | None = None) -> dict:
    """Run ZigZag on a packaged workload (:data:`WORKLOADS`) with a packaged example
    accelerator (:data:`HARDWARE_MAPPINGS`).

    Returns {"seconds", "energy_pj", "latency_cycles", "layers", "workload", "accelerator",
    "mapping", "version", "opt", "settings", "per_layer"}; each ``per_layer`` entry holds
    "name", "energy_pj", "mac_energy_pj", "latency_cycles", "seconds" (when timed),
    "shape" (:func:`layer_shape`), "levels" (:func:`memory_breakdown`) and "mapping"
    (ZigZag's spatial and temporal mapping, as text). ``layers``
    keeps the first N Conv/Gemm nodes (a truncated in-memory ONNX model)."""
    _require_zigzag()
    os.environ.setdefault("MPLBACKEND", "Agg")  # ZigZag saves a memory-hierarchy PNG; keep it headless
    from zigzag.api import get_hardware_performance_zigzag

    paths = example_paths(workload, hardware)
    if layers is None:
        model: Any = paths["workload"]  # the plain path, as a user would pass it
        n_expected = None
    else:
        model, n_expected = _truncated_model(paths["workload"], int(layers))

    with tempfile.TemporaryDirectory(prefix="zigzag_peer_") as dump_folder:
        with _quiet_zigzag() as timer:
            t0 = time.perf_counter()
            energy, latency, cmes = get_hardware_performance_zigzag(
                workload=model,
                accelerator=paths["accelerator"],
                mapping=paths["mapping"],
                opt=OPT,
                dump_folder=dump_folder,
                pickle_filename=os.path.join(dump_folder, "list_of_cmes.pickle"),
                loma_show_progress_bar=False,
            )
            t1 = time.perf_counter()

    per_layer_cmes = cmes[0][1]  # SumStage yields (CumulativeCME, [(cme, extra_info), ...])
    starts = timer.starts
    per_layer = []
    for i, (cme, _extra) in enumerate(per_layer_cmes):
        entry: dict[str, Any] = {
            "name": str(cme.layer.name),
            "energy_pj": float(cme.energy_total),
            "mac_energy_pj": float(cme.mac_energy),
            "latency_cycles": float(cme.latency_total2),
            "shape": layer_shape(cme.layer),
            "levels": memory_breakdown(cme),
            # ZigZag's chosen mapping, as it prints it (per operand, innermost level first).
            "mapping": {"spatial": str(cme.spatial_mapping), "temporal": str(cme.temporal_mapping)},
        }
        if len(starts) == len(per_layer_cmes):
            end = starts[i + 1][1] if i + 1 < len(starts) else t1
            entry["seconds"] = end - starts[i][1]
        per_layer.append(entry)
    if n_expected is not None and n_expected != len(per_layer):
        raise RuntimeError(f"expected {n_expected} evaluated layers, ZigZag returned {len(per_layer)}")

    return {
        "seconds": t1 - t0,
        "energy_pj": float(energy),
        "latency_cycles": float(latency),
        "layers": len(per_layer),
        "workload": paths["workload"],
        "accelerator": paths["accelerator"],
        "mapping": paths["mapping"],
        "version": zigzag_version(),
        "opt": OPT,
        "settings": _api_defaults(get_hardware_performance_zigzag),
        "per_layer": per_layer,
    }


def run_zigzag_alexnet(layers: int | None = None) -> dict:
    """ZigZag's eyeriss_like on its AlexNet (:func:`run_zigzag` with the defaults), the
    run ``benchmarks/bench_energy.py`` times."""
    return run_zigzag("alexnet", "eyeriss_like", layers)


if __name__ == "__main__":
    import argparse
    import json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=None, help="only the first N Conv/Gemm layers")
    ap.add_argument("--workload", choices=WORKLOADS, default="alexnet")
    ap.add_argument("--hardware", choices=sorted(HARDWARE_MAPPINGS), default="eyeriss_like")
    ap.add_argument("--out", help="also write the JSON to this file")
    args = ap.parse_args()
    problem = zigzag_import_problem()
    if problem:
        sys.exit(problem)
    text = json.dumps(run_zigzag(args.workload, args.hardware, args.layers), indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
