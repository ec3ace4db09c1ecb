"""Simplify an ONNX graph before hwprune imports it (needs only the ``onnx`` package).

Exporters write graphs that compute more than the network: torch's legacy exporter
merges identical initialisers (zero biases, unit batch-norm scales) into ``Identity``
nodes that read one shared initialiser, and without constant folding it computes
reshape targets at run time (``Shape -> Gather -> Unsqueeze -> Concat -> Reshape``);
the dynamo exporter passes axes and targets as constant inputs. This pass turns all of
that into initialisers, so the importer sees only the operators that run on the data:

1. **Batch.** A symbolic batch dimension of the graph input becomes 1 (hwprune counts
   one sample), so that the shapes below are static.
2. **Constant folding.** A node whose inputs are all constants (initialisers,
   ``Constant`` nodes, earlier folded outputs) is computed once with ONNX's reference
   evaluator (``onnx.reference``) and replaced by its outputs. ``Shape`` and ``Size`` of
   a tensor whose shape ONNX's shape inference knows fully become constants too. Nodes
   that draw random numbers, control flow (``If``, ``Loop``, ``Scan``) and operators of
   other domains are never folded.
3. **Identity elimination.** An ``Identity`` (or ``Dropout`` in inference, which is one)
   of a constant is that constant (this resolves the legacy exporter's merged
   initialisers); of an activation, its readers read the activation itself.
4. **Strided views.** ``Reshape(x, [-1])`` then ``Gather`` of the indices 0..N-1 in
   order (the dynamo exporter's ``as_strided`` of a contiguous tensor) is a ``Reshape``
   of ``x`` to the indices' shape.
5. **Dead nodes** (outputs that no kept node or graph output reads) and unread
   initialisers are removed, and the graph's inputs keep only the data input(s).

Rounds repeat (shape inference, folding) until nothing changes, because a folded
reshape target can make a later ``Shape`` foldable.

What is simplified away computes nothing per sample: it is fixed once the input shape
is. A node that cannot be folded although all its inputs are constant (the reference
evaluator fails on it) is an ``InputError`` naming it.

Why not a library: onnxsim folds with onnxruntime (a large native dependency) and
onnxoptimizer has no general constant folding; onnxscript's optimizer folds well but
also rewrites operators (it fuses batch norms into convolutions, which changes the
parameter count hwprune reports). See docs/importing.md.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError

NEVER_FOLD = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
              "Bernoulli", "If", "Loop", "Scan", "SequenceMap"}
ALIASES = {"Identity", "Dropout"}     # one output equal to the first input, in inference
MAX_FOLDED_ELEMENTS = 2**28          # elements of one folded tensor (1 GiB of float32)
MAX_ROUNDS = 8
LIGHT_ELEMENTS = 4096                # constants shape inference sees with their values


def _label(node) -> str:
    name = node.name or (node.output[0] if len(node.output) else "")
    return f"node {name!r} ({node.op_type})"


def _opset(model) -> dict[str, int]:
    return {(o.domain or ""): int(o.version) for o in model.opset_import}


def _fix_batch(graph, initialisers: set[str]) -> None:
    """A symbolic or zero batch dimension of each data input becomes 1."""
    for vi in graph.input:
        if vi.name in initialisers or not vi.type.HasField("tensor_type"):
            continue
        dims = vi.type.tensor_type.shape.dim
        if len(dims) >= 1 and not (dims[0].HasField("dim_value") and dims[0].dim_value > 0):
            dims[0].Clear()
            dims[0].dim_value = 1


def light_copy(model, keep_elements: int = LIGHT_ELEMENTS):
    """A copy of ``model`` for shape inference: initialisers of more than ``keep_elements``
    elements become graph inputs of their type and shape (their values are never needed
    for shapes; copying them would double the memory of a large model)."""
    from onnx import ModelProto, helper
    light = ModelProto()
    g = model.graph
    light.ir_version = model.ir_version
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    lg = light.graph
    lg.name = g.name
    lg.node.extend(g.node)
    lg.output.extend(g.output)
    lg.value_info.extend(g.value_info)
    names = {t.name for t in g.initializer}
    lg.input.extend(vi for vi in g.input if vi.name not in names)
    for t in g.initializer:
        if math.prod(t.dims) <= keep_elements:
            lg.initializer.append(t)
        else:
            lg.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    return light


def static_shapes(model) -> dict[str, tuple[int, ...]]:
    """Full shapes (batch included) of the tensors ONNX's shape inference knows fully."""
    from onnx import shape_inference
    light = light_copy(model)
    try:
        inferred = shape_inference.infer_shapes(light)
    except Exception:
        inferred = light           # folding then sees only the declared shapes
    g = inferred.graph
    out = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
            continue
        dims = vi.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            out[vi.name] = tuple(int(d.dim_value) for d in dims)
    return out


class _Consts:
    """Constant tensors by name: the model's initialisers (read into numpy only when a
    fold needs them) and folded values."""

    def __init__(self, initialisers):
        self._proto = {t.name: t for t in initialisers}
        self._array: dict[str, np.ndarray] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._proto or name in self._array

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._array:
            from onnx import numpy_helper
            self._array[name] = numpy_helper.to_array(self._proto[name])
        return self._array[name]

    def set(self, name: str, value: np.ndarray) -> None:
        self._array[name] = np.asarray(value)
        self._proto.pop(name, None)     # made from the array when needed

    def alias(self, name: str, source: str) -> None:
        """``name`` holds the same tensor as ``source``."""
        if source in self._proto:
            from onnx import TensorProto
            t = TensorProto()
            t.CopyFrom(self._proto[source])
            t.name = name
            self._proto[name] = t
        else:
            self._array[name] = self._array[source]

    def tensor(self, name: str):
        """``name`` as an initialiser (the original one where it was not folded)."""
        from onnx import numpy_helper
        if name not in self._proto:
            self._proto[name] = numpy_helper.from_array(self._array[name], name)
        return self._proto[name]

    def size(self, name: str) -> int:
        if name in self._proto:
            return math.prod(self._proto[name].dims)
        return int(self._array[name].size)

    def info(self, name: str):
        """A graph input declaring ``name``'s type and shape (for shape inference)."""
        from onnx import helper
        t = self.tensor(name)
        return helper.make_tensor_value_info(name, t.data_type, list(t.dims))


def _evaluate(node, inputs: list, opsets: dict[str, int]) -> list[np.ndarray]:
    """The outputs of ``node`` on constant ``inputs`` (ONNX's reference evaluator)."""
    from onnx.reference import ReferenceEvaluator
    feeds = {name: value for name, value in zip(node.input, inputs) if name}
    try:
        outs = ReferenceEvaluator(node, opsets=opsets).run(None, feeds)
    except Exception as exc:
        shapes = [tuple(np.shape(v)) for v in inputs]
        raise InputError(f"{_label(node)}: all its inputs are constants (shapes {shapes}), but "
                         f"ONNX's reference evaluator cannot compute it ({type(exc).__name__}: "
                         f"{str(exc)[:200]})") from None
    outs = [np.asarray(o) for o in outs]
    big = [o.shape for o in outs if o.size > MAX_FOLDED_ELEMENTS]
    if big:
        raise InputError(f"{_label(node)}: folding its constant inputs gives a tensor of shape "
                         f"{big[0]}, more than hwprune folds ({MAX_FOLDED_ELEMENTS} elements)")
    return outs


def _shape_of(node, shape: tuple[int, ...]) -> np.ndarray:
    """``Shape`` (with ``start``/``end``, opset 15) or ``Size`` of a tensor of ``shape``."""
    from onnx import helper
    if node.op_type == "Size":
        return np.asarray(math.prod(shape), dtype=np.int64)
    a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
    start, end = int(a.get("start", 0)), a.get("end")
    sl = slice(start, None if end is None else int(end))
    return np.asarray(shape[sl], dtype=np.int64)


def _foldable(node, consts: dict, shapes: dict) -> bool:
    if node.domain not in ("", "ai.onnx") or node.op_type in NEVER_FOLD:
        return False
    if node.op_type in ("Shape", "Size"):
        return bool(node.input) and (node.input[0] in consts or node.input[0] in shapes)
    if not any(node.input) and node.op_type != "Constant":
        return False               # malformed (the importer says so) or a source of data
    return all(not t or t in consts for t in node.input)


def _fold_round(graph, consts: dict, shapes: dict, opsets: dict[str, int]) -> tuple[list, bool]:
    """One pass over the nodes in order; returns the kept nodes (inputs renamed through
    eliminated identities) and whether anything was folded or removed."""
    from onnx import NodeProto
    outputs = {o.name for o in graph.output}
    alias: dict[str, str] = {}
    kept, changed = [], False
    for node in graph.node:
        node_in = [alias.get(t, t) for t in node.input]
        if node_in != list(node.input):
            renamed = NodeProto()
            renamed.CopyFrom(node)
            del renamed.input[:]
            renamed.input.extend(node_in)
            node = renamed
        if node.op_type in ALIASES and node_in and node_in[0] and len(node.output) >= 1 \
                and node.domain in ("", "ai.onnx") and not any(node.output[1:]) \
                and (node.op_type == "Identity" or all(not t or t in consts for t in node_in[1:])):
            out = node.output[0]
            if node_in[0] in consts:
                consts.alias(out, node_in[0])
                changed = True
                continue
            if out not in outputs:
                alias[out] = node_in[0]
                changed = True
                continue
        if _foldable(node, consts, shapes):
            if node.op_type in ("Shape", "Size"):
                src = node.input[0]
                shape = shapes[src] if src in shapes else consts[src].shape
                values = [_shape_of(node, tuple(shape))]
            else:
                values = _evaluate(node, [consts[t] if t else None for t in node.input], opsets)
            for name, value in zip(node.output, values):
                if name:
                    consts.set(name, value)
            changed = True
            continue
        kept.append(node)
    return kept, changed


def _strided_views(nodes: list, consts: _Consts) -> tuple[list, bool]:
    """The dynamo exporter writes ``as_strided`` as ``Reshape(x, [-1])`` then ``Gather``
    of a constant index tensor. Where the indices are ``0, 1, ..., N-1`` in order (a view
    of the same elements: ConvNeXt's ``x.mean(..., keepdim=True)`` before its final
    layer norm), the pair is ``Reshape(x, indices.shape)``."""
    from onnx import helper
    made = {n.output[0]: n for n in nodes if n.op_type == "Reshape" and len(n.input) == 2
            and n.input[1] in consts and consts[n.input[1]].size == 1}
    out, changed = [], False
    for node in nodes:
        flat = made.get(node.input[0]) if node.op_type == "Gather" and len(node.input) == 2 else None
        axis = {a.name: helper.get_attribute_value(a) for a in node.attribute}.get("axis", 0)
        if flat is not None and axis == 0 and node.input[1] in consts:
            idx = consts[node.input[1]]
            if idx.ndim >= 1 and np.array_equal(idx.ravel(), np.arange(idx.size)):
                target = f"{node.output[0]}__view_shape"
                consts.set(target, np.asarray(idx.shape, np.int64))
                node = helper.make_node("Reshape", [flat.input[0], target], list(node.output),
                                        name=node.name)
                changed = True
        out.append(node)
    return out, changed


def _prune_dead(nodes: list, graph_outputs: set[str]) -> list:
    """The nodes some output of which is read by a later kept node or is a graph output."""
    needed = set(graph_outputs)
    keep = []
    for node in reversed(nodes):
        if any(o in needed for o in node.output if o) or not any(node.output):
            keep.append(node)
            needed.update(t for t in node.input if t)
    keep.reverse()
    return keep


def simplify(model):
    """Simplify the ONNX ``model`` in place (see the module docstring) and return it."""
    m = model
    g = m.graph
    initialisers = {t.name for t in g.initializer}
    _fix_batch(g, initialisers)
    consts = _Consts(list(g.initializer))
    opsets = _opset(m)
    data_inputs = [vi for vi in g.input if vi.name not in initialisers]
    for _ in range(MAX_ROUNDS):
        shapes = static_shapes(m)
        nodes, changed = _fold_round(g, consts, shapes, opsets)
        nodes, viewed = _strided_views(nodes, consts)
        changed = changed or viewed
        nodes = _prune_dead(nodes, {o.name for o in g.output})
        changed = changed or len(nodes) != len(g.node)
        read = sorted(t for t in {t for n in nodes for t in n.input} | {o.name for o in g.output}
                      if t in consts)
        del g.node[:]
        g.node.extend(nodes)
        # For the next round's shape inference: small constants with their values (a
        # reshape target), large ones declared only (as light_copy does).
        small = [t for t in read if consts.size(t) <= LIGHT_ELEMENTS]
        del g.initializer[:]
        g.initializer.extend([consts.tensor(t) for t in small])
        del g.input[:]
        g.input.extend(data_inputs)
        g.input.extend([consts.info(t) for t in read if consts.size(t) > LIGHT_ELEMENTS])
        if not changed:
            break
    del g.initializer[:]
    g.initializer.extend([consts.tensor(t) for t in read])
    del g.input[:]
    g.input.extend(data_inputs)
    kept_names = {t.name for t in g.initializer}
    keep_vi = [vi for vi in g.value_info if vi.name not in kept_names]
    del g.value_info[:]
    g.value_info.extend(keep_vi)
    return m
