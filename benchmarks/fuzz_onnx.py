"""Fuzz the ONNX importer with small random graphs built with ``onnx.helper`` (issue 18).

Each graph is a chain of Conv (random kernel, stride, pads, dilations, group, auto_pad,
bias), MaxPool/AveragePool, Flatten, Gemm/MatMul (random transposes and initialiser
shapes), Relu, Add, Concat and BatchNormalization on a random input, with parameters
mostly consistent and sometimes not. Every graph must either import with per-layer
output shapes that agree with ``onnx.shape_inference.infer_shapes`` (strict mode) and
MACs recomputed from ONNX's shapes, or raise an ``InputError`` that is one of the
importer's own checks (not its catch-all for unforeseen malformed nodes). Anything
else is a failure.

    python benchmarks/fuzz_onnx.py               # 2,000 examples
    python benchmarks/fuzz_onnx.py --examples 20000 --seed 3

The test suite runs the same property with a small budget
(``tests/test_import_onnx.py::test_fuzz_onnx_graphs_import_consistently_or_are_rejected``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter

import numpy as np
import onnx
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper, shape_inference

from hwprune.errors import InputError
from hwprune.workload.onnx_import import load_onnx

CATCH_ALL = "is malformed ("      # the importer's last-resort message: a check is missing


@st.composite
def graphs(draw):
    """A small ONNX ModelProto (see the module docstring)."""
    ints = lambda lo, hi: draw(st.integers(lo, hi))  # noqa: E731
    bad = lambda: draw(st.integers(0, 9)) == 0       # noqa: E731  one draw in ten is off
    c, h, w = ints(1, 4), ints(1, 9), ints(1, 9)
    shape = [c, h, w]                                # what the generator believes
    nodes, inits, cur, k = [], [], "x", 0

    def init(name, dims):
        inits.append(numpy_helper.from_array(np.full(dims, 0.5, np.float32), name))

    for _ in range(ints(1, 5)):
        k += 1
        out = f"t{k}"
        op = draw(st.sampled_from(["Conv", "Conv", "Conv", "Pool", "Flatten", "Gemm", "MatMul", "Relu",
                                   "Add", "Concat", "BatchNormalization"]))
        if op == "Conv":
            group = draw(st.sampled_from([1, 1, 2, shape[0]])) if len(shape) == 3 else 1
            m = ints(1, 4) * group
            kh, kw = ints(1, 4), ints(1, 4)
            cin = (shape[0] // max(group, 1)) if not bad() and len(shape) == 3 else ints(1, 4)
            init(f"w{k}", [m, max(cin, 1), kh, kw])
            attrs = {"group": group}
            if draw(st.booleans()):
                attrs["strides"] = [ints(1, 3), ints(1, 3)]
            if bad():
                attrs["dilations"] = [ints(1, 2), ints(1, 2)]
            auto = draw(st.sampled_from(["NOTSET", "NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"]))
            if auto != "NOTSET":
                attrs["auto_pad"] = auto
            if auto == "NOTSET" or bad():
                attrs["pads"] = [ints(0, 2) for _ in range(4)]
            ins = [cur, f"w{k}"]
            if draw(st.booleans()):
                init(f"b{k}", [m if not bad() else ints(1, 5)])
                ins.append(f"b{k}")
            nodes.append(helper.make_node("Conv", ins, [out], name=f"n{k}", **attrs))
            if len(shape) == 3:
                s = attrs.get("strides", [1, 1])
                if auto.startswith("SAME"):
                    shape = [m, -(-shape[1] // s[0]), -(-shape[2] // s[1])]
                else:
                    p = attrs.get("pads", [0] * 4) if auto == "NOTSET" else [0] * 4
                    shape = [m, max((shape[1] + p[0] + p[2] - kh) // s[0] + 1, 1),
                             max((shape[2] + p[1] + p[3] - kw) // s[1] + 1, 1)]
        elif op == "Pool":
            kind = draw(st.sampled_from(["MaxPool", "AveragePool"]))
            kh, kw = ints(1, 3) - bad(), ints(1, 3)
            attrs = {"kernel_shape": [kh, kw]} if not bad() else {}
            if draw(st.booleans()):
                attrs["strides"] = [ints(1, 3), ints(1, 3)]
            auto = draw(st.sampled_from(["NOTSET", "NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"]))
            if auto != "NOTSET":
                attrs["auto_pad"] = auto
            else:
                attrs["pads"] = [ints(0, 1) for _ in range(4)]
            if draw(st.booleans()):
                attrs["ceil_mode"] = 1
            nodes.append(helper.make_node(kind, [cur], [out], name=f"n{k}", **attrs))
            if len(shape) == 3 and kh > 0:
                s = attrs.get("strides", [1, 1])
                shape = [shape[0], max(-(-shape[1] // s[0]), 1), max(-(-shape[2] // s[1]), 1)]
        elif op == "Flatten":
            nodes.append(helper.make_node("Flatten", [cur], [out], name=f"n{k}"))
            shape = [int(np.prod(shape))]
        elif op in ("Gemm", "MatMul"):
            if len(shape) != 1 and not bad():         # mostly flatten first, as models do
                nodes.append(helper.make_node("Flatten", [cur], [f"f{k}"], name=f"f{k}"))
                cur, shape = f"f{k}", [int(np.prod(shape))]
            feat = shape[0] if len(shape) == 1 and not bad() else ints(1, 8)
            n = ints(1, 5)
            attrs = {}
            if op == "Gemm":
                trans_b = draw(st.booleans())
                attrs["transB"] = int(trans_b)
                if bad():
                    attrs["transA"] = 1
                init(f"w{k}", [n, feat] if trans_b else [feat, n])
            else:
                dims = draw(st.sampled_from([[feat, n], [feat, n], [feat], [2, feat, n]]))
                init(f"w{k}", dims)
            ins = [cur, f"w{k}"]
            if op == "Gemm" and draw(st.booleans()):
                init(f"b{k}", draw(st.sampled_from([[n], [1, n], [1], [n + 1]])))
                ins.append(f"b{k}")
            nodes.append(helper.make_node(op, ins, [out], name=f"n{k}", **attrs))
            shape = [n]
        elif op == "Relu":
            nodes.append(helper.make_node("Relu", [cur], [out], name=f"n{k}"))
        elif op == "Add":
            other = cur if not bad() or k == 1 else "x"
            nodes.append(helper.make_node("Add", [cur, other], [out], name=f"n{k}"))
        elif op == "Concat":
            axis = 1 if not bad() else ints(-3, 3)
            nodes.append(helper.make_node("Concat", [cur, cur], [out], name=f"n{k}", axis=axis))
            shape = [2 * shape[0], *shape[1:]]
        else:
            ch = shape[0] if not bad() else ints(1, 5)
            for p in ("g", "be", "mu", "v"):
                init(f"{p}{k}", [ch])
            nodes.append(helper.make_node("BatchNormalization",
                                          [cur, f"g{k}", f"be{k}", f"mu{k}", f"v{k}"], [out],
                                          name=f"n{k}"))
        cur = out
    graph = helper.make_graph(
        nodes, "fuzz", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, h, w])],
        [helper.make_tensor_value_info(cur, TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _onnx_shapes(model) -> dict[str, tuple[int, ...]] | None:
    try:
        inferred = shape_inference.infer_shapes(model, strict_mode=True)
    except Exception:
        return None
    out = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            out[vi.name] = tuple(int(d.dim_value) for d in dims[1:])
    return out


def check(model, directory: str) -> str:
    """``"accepted"`` or ``"rejected"``; raises AssertionError (or the importer's own
    unexpected exception) when the importer breaks its promise on ``model``."""
    path = os.path.join(directory, "fuzz.onnx")
    onnx.save(model, path)
    try:
        imported = load_onnx(path)
    except InputError as exc:
        assert CATCH_ALL not in str(exc), f"no check caught this malformed node: {exc}"
        assert "\n" not in str(exc), repr(str(exc))
        return "rejected"
    shapes = _onnx_shapes(model)
    assert shapes is not None, "hwprune imported a model ONNX's strict shape inference rejects"
    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    layers = {lay.name: lay for lay in imported.network.layers}
    for node in model.graph.node:
        lay = layers.get(node.name)
        if lay is None:                          # folded into the layer before, or a pass-through
            continue
        expected = shapes.get(node.output[0])
        assert expected is not None, f"ONNX inferred no shape for {node.output[0]}"
        assert lay.output_shape == expected, (node.name, lay.output_shape, expected)
        if node.op_type == "Conv":
            wt = consts[node.input[1]]
            m, e, f = expected
            assert lay.macs == m * e * f * wt.shape[1] * wt.shape[2] * wt.shape[3], node.name
        elif node.op_type in ("Gemm", "MatMul"):
            k_in = shapes.get(node.input[0], imported.network.input_shape)
            assert lay.macs == int(np.prod(k_in)) * expected[0], node.name
    return "accepted"


def _dedup(n: int) -> int:
    """Import a graph of one MatMul and ``n`` Adds, all named ``same``; print the time."""
    from onnx import TensorProto, helper, numpy_helper

    from hwprune.workload.onnx_import import load_onnx

    nodes = [helper.make_node("MatMul", ["x", "w"], ["t0"], name="same")]
    nodes += [helper.make_node("Add", [f"t{i}", f"t{i}"], [f"t{i + 1}"], name="same")
              for i in range(n)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info(f"t{n}", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(np.ones((4, 3), np.float32), "w")])
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/same.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
        start = time.perf_counter()
        layers = load_onnx(path).network.layers
        print(f"{n} nodes named 'same': imported in {time.perf_counter() - start:.2f} s, "
              f"{len(layers)} layers, {len({lay.name for lay in layers})} distinct names")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dedup", type=int, metavar="N", default=0,
                    help="instead: time the import of N identically named nodes (the name "
                         "de-duplication must stay linear)")
    args = ap.parse_args(argv)
    if args.dedup:
        return _dedup(args.dedup)
    from hypothesis import HealthCheck, given, seed, settings

    counts: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        @seed(args.seed)
        @settings(max_examples=args.examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(graphs())
        def run(model):
            counts[check(model, tmp)] += 1

        start = time.perf_counter()
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run()
    print(f"{sum(counts.values())} graphs in {time.perf_counter() - start:.1f} s: "
          f"{counts['accepted']} accepted (shapes and MACs agree with ONNX), "
          f"{counts['rejected']} rejected with an InputError, 0 failures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
