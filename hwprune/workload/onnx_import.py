"""Read an ONNX model into a hwprune workload, with its weights (``pip install onnx``).

The graph is simplified first (``onnx_simplify``: constant folding, the exporters'
merged initialisers and Identity nodes, shape arithmetic, dead nodes), so only the
operators that run on the data are imported.

Supported operators:
- Conv, 2-D and 1-D (groups, dilation; explicit ``pads``, symmetric or not, or
  ``auto_pad`` VALID/SAME_UPPER/SAME_LOWER);
- Gemm and MatMul with a constant weight: an fc layer on (batch, features), a linear
  layer over tokens on anything longer; a following Add of a per-unit constant is its
  bias. MatMul of two activations: a matmul layer (attention's Q K^T and A V);
- MaxPool, AveragePool (``pads``/``auto_pad`` as Conv, ``ceil_mode``), GlobalAveragePool,
  GlobalMaxPool, and ReduceMean/ReduceMax over a map's H and W keeping them (a global
  pool); any other ReduceMean/Max/Min/Sum is a reduce layer;
- BatchNormalization (folded into the convolution before it when that convolution
  feeds nothing else; otherwise a batch-norm layer), LayerNormalization;
- Add/Sum of equal-shape tensors (a residual add); Add, Sub, Mul, Div, Pow, Max, Min
  otherwise (broadcasting, a constant operand: an elementwise layer; a constant of more
  than one number is a learned Constant layer, e.g. ViT's position embedding);
- activations recorded as layers (Gelu, Sigmoid, Tanh, HardSwish, HardSigmoid, Softmax,
  LogSoftmax, Erf, Elu, Selu, Celu, Softplus, Softsign, Exp, Log, Sqrt, Reciprocal, Abs,
  Neg, Mish) and pass-throughs without a layer (Relu, LeakyRelu, Clip, Dropout, Identity,
  Cast);
- data movement: Concat on axis 1 (constant inputs included), Flatten, Reshape, Squeeze,
  Unsqueeze, Transpose, Slice, Split, Gather of one index, Expand, Resize/Upsample.

Shapes leave the batch out. A tensor whose batch axis torch moved away from the front
(attention's (T, batch, D)) keeps the batch of 1 inside hwprune's shape; a transpose or
reshape that moves only axes of size 1 is a view (``_Builder``).

Every initialiser is checked against the node that reads it (a weight that does not
match the input's channels or features, a bias of the wrong length: a ``ShapeError``
naming the node, the tensor and both shapes), and every attribute against what the
operator allows. Shapes come from hwprune's own inference as layers are added, and are
then checked against ONNX's own shape inference wherever it has one: a disagreement is
an error, never a silently different count. A malformed file is an ``InputError``
naming the node, never a traceback.

Any other operator is an error naming it, its node and its input shapes, unless it has
no constant inputs (so no weights and no MACs) and leaves its one input's shape
unchanged: then it is skipped with a warning, its output read as its input.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import InputError, ShapeError
from .builder import NetworkBuilder
from .imported import ImportedModel, fold_batchnorm, skip_unsupported
from .ops import (
    Concat,
    Constant,
    Conv2d,
    Expand,
    GlobalPool,
    LayerNorm,
    Permute,
    Pool2d,
    Reduce,
    Select,
    Slice,
    Upsample,
)

# Weightless element-wise operators that a device applies in the producing layer's output
# stage: no layer of their own (as the torch route passes ReLU, ReLU6, Hardtanh through).
PASS_THROUGH = {"Relu", "LeakyRelu", "Clip", "Dropout", "Identity", "Relu6", "Cast"}
# Element-wise functions recorded as Activation layers (ops.ACTIVATIONS).
ACTIVATION_FN = {"Gelu": "gelu", "Sigmoid": "sigmoid", "Tanh": "tanh", "HardSwish": "hardswish",
                 "HardSigmoid": "hardsigmoid", "Softmax": "softmax", "LogSoftmax": "log_softmax",
                 "Elu": "elu", "Selu": "selu", "Celu": "celu", "Softplus": "softplus",
                 "Softsign": "softsign", "Erf": "erf", "Exp": "exp", "Log": "log", "Sqrt": "sqrt",
                 "Reciprocal": "reciprocal", "Abs": "abs", "Neg": "neg", "Mish": "mish"}
# Element-wise arithmetic of two or more operands (ops.ELEMENTWISE).
ELEMENTWISE_FN = {"Add": "add", "Sum": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow",
                  "Max": "max", "Min": "min"}

MAX_DIM = 2**31 - 1            # one dimension of a tensor (ONNX runtimes use int32 sizes)
MAX_WEIGHT_ELEMENTS = 2**31    # elements of one initialiser read into memory
MAX_ELEMENTS = 2**48           # elements of one activation (batch excluded)

# Inputs each operator needs (at least), so that a short node is an error, not an IndexError.
MIN_INPUTS = {"Conv": 2, "Gemm": 2, "MatMul": 2, "MaxPool": 1, "AveragePool": 1,
              "GlobalAveragePool": 1, "GlobalMaxPool": 1, "BatchNormalization": 5, "Add": 2,
              "Sum": 1, "Concat": 1, "Flatten": 1, "Reshape": 2, "Sub": 2, "Mul": 2, "Div": 2,
              "Pow": 2, "Max": 1, "Min": 1, "LayerNormalization": 2, "Expand": 2, "Slice": 3,
              "Gather": 2, "Transpose": 1, "Split": 1}

_NUMERIC = ("f", "i", "u", "b")     # numpy kinds a weight may have


class _Builder(NetworkBuilder):
    """The network builder plus where each layer's batch axis is. hwprune's shapes leave
    the batch out; ONNX's shapes have it (1 here: the simplifier fixes it). A tensor whose
    first ONNX axis is 1 has the batch there, and hwprune's shape is the rest; a tensor
    whose first axis is larger (attention's (T, batch, D) after torch moves the batch
    axis) is *batchless*: hwprune's shape is ONNX's whole shape, the batch of 1 inside it.
    Either way the elements per sample, and so every count, are the same."""

    def __init__(self, name, input_shape):
        super().__init__(name, input_shape)
        self.batchless: set[str] = set()

    def off(self, x: str) -> int:
        """1 where ``x``'s ONNX shape has the batch axis in front of hwprune's, else 0."""
        return 0 if x in self.batchless else 1

    def full(self, x: str) -> tuple[int, ...]:
        """``x``'s ONNX shape, batch of 1 included."""
        return self.shape(x) if x in self.batchless else (1, *self.shape(x))


def _sample_shape(full: tuple[int, ...]) -> tuple[int, ...]:
    """hwprune's shape of a tensor of ONNX shape ``full`` (see ``_Builder``)."""
    return full[1:] if full and full[0] == 1 else full


def _unit_free(shape) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


class _Malformed(Exception):
    """Internal: a node or tensor cannot be read; becomes an InputError naming it."""


def _label(node) -> str:
    name = node.name or (node.output[0] if len(node.output) else "")
    return f"node {name!r} ({node.op_type})"


def _attrs(node) -> dict:
    from onnx import helper
    try:
        return {a.name: helper.get_attribute_value(a) for a in node.attribute}
    except Exception as exc:
        raise InputError(f"{_label(node)}: unreadable attribute: {exc}") from None


def _to_array(t, what: str) -> np.ndarray:
    """An initialiser or Constant tensor as a numpy array, refusing what a weight cannot
    be (strings, absurd sizes, data that does not match the declared shape)."""
    from onnx import TensorProto, numpy_helper
    dims = list(t.dims)
    if any(d < 0 or d > MAX_DIM for d in dims):
        raise InputError(f"{what}: dimensions {dims} out of range (each 0 to {MAX_DIM})")
    if math.prod(dims) > MAX_WEIGHT_ELEMENTS:
        raise InputError(f"{what}: {math.prod(dims)} elements (shape {dims}) is more than "
                         f"hwprune reads ({MAX_WEIGHT_ELEMENTS})")
    if t.data_type in (TensorProto.STRING, TensorProto.UNDEFINED):
        kind = "string" if t.data_type == TensorProto.STRING else "undefined"
        raise InputError(f"{what}: a tensor of {kind} type cannot be a weight or a constant; "
                         "accepted: numeric tensors")
    try:
        arr = numpy_helper.to_array(t)
    except Exception as exc:
        raise InputError(f"{what}: its data cannot be read ({type(exc).__name__}: {exc}); "
                         f"declared shape {dims}") from None
    if arr.dtype.kind not in _NUMERIC:
        raise InputError(f"{what}: a tensor of type {arr.dtype} cannot be a weight or a constant")
    if tuple(arr.shape) != tuple(dims):
        raise InputError(f"{what}: its data holds shape {arr.shape}, declared {dims}")
    return arr


def _ints(node, a: dict, key: str, n: int, default, low: int, what: str) -> tuple[int, ...]:
    """Attribute ``key`` as ``n`` ints >= ``low`` (``default`` when absent)."""
    value = a.get(key, default)
    if value is None:
        raise InputError(f"{_label(node)}: attribute {key} is required ({what})")
    try:
        ints = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"{_label(node)}: attribute {key} must be a list of ints, got {value!r}") from None
    if len(ints) != n or any(v < low or v > MAX_DIM for v in ints):
        raise InputError(f"{_label(node)}: attribute {key} must be {n} ints >= {low} ({what}), "
                         f"got {list(ints)}")
    return ints


def _int(node, a: dict, key: str, default: int) -> int:
    value = a.get(key, default)
    if isinstance(value, (int, np.integer)):
        return int(value)
    raise InputError(f"{_label(node)}: attribute {key} must be an int, got {value!r}")


def _float(node, a: dict, key: str, default: float) -> float:
    value = a.get(key, default)
    if isinstance(value, (int, float, np.number)) and math.isfinite(float(value)):
        return float(value)
    raise InputError(f"{_label(node)}: attribute {key} must be a finite number, got {value!r}")


def _padding(node, a: dict, in_hw, kernel, stride, dilation=None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(padding at the start, padding at the end) per spatial axis, from ``pads`` or
    ``auto_pad`` as ONNX defines them: SAME_* pads so that the output is
    ``ceil(in / stride)``, the odd pixel at the end (SAME_UPPER) or the start
    (SAME_LOWER); VALID pads nothing. A dilated window spans ``dilation * (k - 1) + 1``."""
    n = len(kernel)
    dilation = dilation or (1,) * n
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode(errors="replace") if isinstance(auto, bytes) else str(auto)
    if auto not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise InputError(f"{_label(node)}: auto_pad {auto!r} is not one of NOTSET, VALID, "
                         "SAME_UPPER, SAME_LOWER")
    if auto == "NOTSET":
        pads = _ints(node, a, "pads", 2 * n, [0] * (2 * n), 0, "padding begin and end per axis")
        return pads[:n], pads[n:]
    if "pads" in a and any(int(p) for p in a["pads"]):
        raise InputError(f"{_label(node)}: pads {list(a['pads'])} given together with auto_pad "
                         f"{auto}; ONNX allows only one")
    if auto == "VALID":
        return (0,) * n, (0,) * n
    begin, end = [], []
    for size, k, s, d in zip(in_hw, kernel, stride, dilation):
        out = -(-size // s)
        total = max((out - 1) * s + d * (k - 1) + 1 - size, 0)
        small, big = total // 2, total - total // 2
        begin.append(small if auto == "SAME_UPPER" else big)
        end.append(big if auto == "SAME_UPPER" else small)
    return tuple(begin), tuple(end)


def _shape_error(node, tensor: str, shape, expected: str) -> ShapeError:
    return ShapeError(f"{_label(node)}: {tensor!r} has shape {tuple(int(d) for d in shape)}, "
                      f"expected {expected}")


def _broadcasts_to(c: np.ndarray, target: tuple[int, ...]) -> bool:
    """Whether ``c`` broadcasts to ``target`` without changing it (numpy rules)."""
    try:
        return np.broadcast_shapes(c.shape, target) == target
    except ValueError:
        return False


def _onnx_shapes(model) -> dict[str, tuple[int, ...]]:
    """ONNX's own inferred shapes (batch of 1 included) of the tensors it could infer fully."""
    from onnx import shape_inference

    from .onnx_simplify import light_copy
    try:
        inferred = shape_inference.infer_shapes(light_copy(model))
    except Exception:
        return {}                 # our own shape inference still runs
    out = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
            continue
        dims = vi.type.tensor_type.shape.dim
        if len(dims) >= 1 and all(d.HasField("dim_value") for d in dims):
            out[vi.name] = tuple(int(d.dim_value) for d in dims)
    return out


def _per_sample(node, t: str, c: np.ndarray, rank: int, off: int = 1) -> tuple[int, ...]:
    """The shape of constant ``c`` read as an activation next to tensors of ``rank``
    axes in hwprune's shape (``off``: 1 where ONNX's shape has a batch axis more): a
    leading batch axis of 1 is dropped."""
    if off and c.ndim == rank + 1:
        if c.shape[0] != 1:
            raise _shape_error(node, t, c.shape, f"a constant with a batch axis of 1 or at most "
                               f"{rank} axes (the activations here have {rank} axes per sample)")
        return tuple(int(d) for d in c.shape[1:])
    if c.ndim > rank + off:
        raise _shape_error(node, t, c.shape, f"at most {rank + off} axes, as the activations it meets")
    return tuple(int(d) for d in c.shape)


def _operand(t: str, node, b: _Builder, tensor, consts, ref: str) -> str:
    """The builder name of input ``t``: its layer, or for a constant a ``Constant`` layer
    of its own (a learned parameter: ViT's class token or position embedding, ConvNeXt's
    layer scale, unless it holds one number). One per reading node: exporters merge
    identical initialisers (ConvNeXt's equal layer scales), which are separate
    parameters in the model."""
    if t in tensor:
        return tensor[t]
    if t not in consts:
        raise InputError(f"{_label(node)} reads {t!r}, which no supported node produced")
    c = consts[t]
    name, k = t, 2
    while name in b._shapes:
        name, k = f"{t}_{k}", k + 1
    shape = _per_sample(node, t, c, len(b.shape(ref)), b.off(ref))
    return b.add_layer(name, Constant(shape, c.size > 1), [])


def _per_unit(c: np.ndarray, shape: tuple[int, ...], conv: bool) -> bool:
    """Whether constant ``c`` holds one value per output unit of a layer of ``shape``:
    per channel of a conv's (C, H, W), per feature (last axis) of an fc's output."""
    if conv:
        return len(shape) == 3 and c.size == shape[0] and c.ndim >= 3 and c.shape[-2:] == (1, 1)
    return c.size == shape[-1] and (c.ndim == 0 or c.shape[-1] == shape[-1])


def _bias_add(node, readers, consts, consumers, out_shape) -> bool:
    """Whether the only reader of ``node``'s output is an Add of a per-unit constant
    (a MatMul's bias, folded into the fc layer made for the MatMul)."""
    out = node.output[0]
    nxt = readers.get(out, [])
    if len(nxt) != 1 or consumers.get(out, 0) != 1 or nxt[0].op_type != "Add" or len(nxt[0].input) != 2:
        return False
    other = [t for t in nxt[0].input if t != out]
    return len(other) == 1 and other[0] in consts and _per_unit(consts[other[0]], out_shape, False)


def _token_fc(node, b: NetworkBuilder, xw, name: str, readers, consts, consumers, weights, biases,
              producer_of) -> str:
    """MatMul of a (..., K) activation and a constant (K, N) weight: nn.Linear over
    tokens, (..., K) -> (..., N), MACs tokens * K * N; a bias Add after it folds in."""
    x, w, in_shape = xw
    k = in_shape[-1]
    if w.ndim != 2 or w.shape[0] != k or w.shape[1] < 1:
        raise _shape_error(node, node.input[1], w.shape,
                           f"({k}, N) for input {node.input[0]!r} of shape {(1, *in_shape)}")
    n = int(w.shape[1])
    has_bias = _bias_add(node, readers, consts, consumers, (*in_shape[:-1], n))
    out = b.token_fc(name, x, n, has_bias)
    weights[out] = np.ascontiguousarray(w.T, dtype=np.float32)
    biases[out] = np.zeros(n, np.float32)
    producer_of[out] = "fc"
    return out


def _elementwise(node, b: NetworkBuilder, tensor, consts, consumers, biases, producer_of,
                 name: str) -> str:
    """Add/Sum/Sub/Mul/Div/Pow/Max/Min. A per-unit constant added to a conv or fc output
    read by nothing else is its bias; equal-shape activations added are a residual
    ``add``; anything else (broadcasting, a constant operand) is an ``elementwise``
    layer, a one-number constant as its implicit scalar operand, any larger constant as
    a ``Constant`` layer."""
    fn = ELEMENTWISE_FN[node.op_type]
    ins = list(node.input)
    if any(not t for t in ins):
        raise InputError(f"{_label(node)}: has an empty input name in {ins}")
    acts = [t for t in ins if t not in consts]
    if not acts:
        raise InputError(f"{_label(node)}: all its inputs are constants, yet it was not folded")
    for t in acts:
        if t not in tensor:
            raise InputError(f"{_label(node)} reads {t!r}, which no supported node produced")
    if len(ins) == 1:
        return tensor[ins[0]]                            # a Sum of one tensor is that tensor
    shapes = [b.shape(tensor[t]) for t in acts]
    ref = max((tensor[t] for t in acts), key=lambda r: len(b.shape(r)))
    for t in ins:
        if t in consts and len(acts) == 1:
            full = b.full(ref)
            if not _broadcasts_to(consts[t], full):
                raise _shape_error(node, t, consts[t].shape, "a constant that broadcasts to the "
                                   f"tensor it is combined with, {full}")
    if fn == "add" and len(ins) == 2 and len(acts) == 1:
        x, c = tensor[acts[0]], consts[[t for t in ins if t in consts][0]]
        kind = producer_of.get(x)
        if kind in ("fc", "conv") and consumers.get(acts[0], 0) == 1 \
                and _per_unit(c, b.shape(x), kind == "conv"):
            biases[x] = biases[x] + c.reshape(-1).astype(np.float32)
            return x
    if fn == "add" and not len(acts) < len(ins) and len(set(shapes)) == 1:
        return b.add(name, [tensor[t] for t in ins])
    operands = [tensor[t] if t in tensor else _operand(t, node, b, tensor, consts, ref)
                for t in ins if not (t in consts and consts[t].size == 1)]
    return b.elementwise(name, fn, operands)


def _reshape(node, a: dict, b: _Builder, x: str, arg, name: str) -> str:
    """Flatten, Reshape, Squeeze, Unsqueeze: ONNX's output shape from the input's (batch
    of 1 included), then a ``flatten`` layer where a (batch, ...) map becomes (batch,
    features) as before, otherwise a ``reshape`` (a view) to hwprune's output shape."""
    op, shape, full = node.op_type, b.shape(x), b.full(x)
    if op == "Flatten":
        axis = _int(node, a, "axis", 1)
        axis = axis + len(full) if axis < 0 else axis
        if not 0 <= axis <= len(full):
            raise InputError(f"{_label(node)}: axis {a.get('axis')} is out of range for {full}")
        out = (math.prod(full[:axis]), math.prod(full[axis:]))
    elif op == "Reshape":
        ok = arg is not None and arg.ndim == 1 and arg.dtype.kind in "iu" and len(arg) >= 1
        t = [int(v) for v in arg] if ok else []
        if ok and not _int(node, a, "allowzero", 0):
            t = [full[i] if v == 0 and i < len(full) else v for i, v in enumerate(t)]
        known = math.prod(v for v in t if v != -1)
        ok = ok and all(v >= -1 for v in t) and t.count(-1) <= 1 and (
            known > 0 and math.prod(full) % known == 0 if -1 in t else known == math.prod(full))
        if not ok:
            raise InputError(f"{_label(node)}: only a reshape to (batch, features) or to another "
                             f"shape of the {math.prod(full)} elements of {full} is supported, got "
                             f"target {None if arg is None else arg.tolist()}")
        out = tuple(math.prod(full) // known if v == -1 else v for v in t)
    else:
        axes = arg if arg is not None else a.get("axes")
        if axes is None and op == "Squeeze":
            axes = [i for i, d in enumerate(full) if d == 1]
        if axes is None:
            raise InputError(f"{_label(node)}: its axes are required")
        rank = len(full) + (len(np.ravel(axes)) if op == "Unsqueeze" else 0)
        axes = sorted(int(v) + rank if int(v) < 0 else int(v) for v in np.ravel(axes))
        if any(not 0 <= v < rank for v in axes) or op == "Squeeze" and any(full[v] != 1 for v in axes):
            raise InputError(f"{_label(node)}: axes {axes} of {full}: out of range, or not of size 1 "
                             "for a Squeeze")
        if op == "Squeeze":
            out = tuple(d for i, d in enumerate(full) if i not in axes)
        else:
            dims = iter(full)
            out = tuple(1 if i in axes else next(dims) for i in range(rank))
    want = _sample_shape(out)
    if len(want) == 1 and len(out) == 2 and out[0] == 1 and x not in b.batchless:
        return b.flatten(name, x) if len(shape) > 1 else x
    return x if want == shape else b.reshape(name, x, want)


def _sample_axis(node, axis: int, b: _Builder, x: str) -> int:
    """ONNX axis ``axis`` of tensor ``x`` as hwprune's axis; the batch axis is refused."""
    rank, off = len(b.full(x)), b.off(x)
    a = axis + rank if axis < 0 else axis
    if not off <= a < rank:
        raise InputError(f"{_label(node)}: axis {axis} of a tensor of shape {b.full(x)}: only axes "
                         "after the batch are supported")
    return a - off


def _transpose(node, a, b, x, args, name, onnx_shape) -> str:
    """Transpose: a ``permute`` layer of the axes that move; where only axes of 1 move
    (the batch of 1 among them), nothing moves and the import loop records a view."""
    full = b.full(x)
    perm = [int(p) for p in a.get("perm", list(range(len(full)))[::-1])]
    if sorted(perm) != list(range(len(full))):
        raise InputError(f"{_label(node)}: perm {perm} is not an order of the {len(full)} axes of {full}")
    off = b.off(x)
    order = [p - off for p in perm if p >= off]          # hwprune's axes, the batch left out
    if order == sorted(order):
        return x
    return b.add_layer(name, Permute(tuple(order)), [x])


def _slice(node, a, b, x, args, name, onnx_shape) -> str:
    """Slice (starts, ends, axes, steps as constant inputs): one ``slice`` layer per axis."""
    starts, ends = args[0], args[1]
    if starts is None or ends is None:
        raise InputError(f"{_label(node)}: its starts and ends must be constants")
    axes = args[2] if len(args) > 2 and args[2] is not None else np.arange(len(starts))
    steps = args[3] if len(args) > 3 and args[3] is not None else np.ones(len(starts), np.int64)
    out = x
    for i, (s0, e0, ax, st) in enumerate(zip(starts, ends, axes, steps)):
        ax, st = _sample_axis(node, int(ax), b, x), int(st)
        n = b.shape(out)[ax]
        start, stop = max(min(int(s0), n), -n), max(min(int(e0), n), -n - 1)
        if st < 1:
            raise InputError(f"{_label(node)}: step {st} is not supported; accepted: >= 1")
        if len(range(n)[start:stop:st]) == n:
            continue                                    # the whole axis
        out = b.add_layer(name if out == x else f"{name}.{i}", Slice(ax, start, stop, st), [out])
    return out


def _split(node, a, b, x, args, name, onnx_shape) -> list[str]:
    """Split: one ``slice`` layer per output (``name.0``, ``name.1``, ...)."""
    shape = b.shape(x)
    ax = _sample_axis(node, _int(node, a, "axis", 0), b, x)
    sizes = args[0] if args and args[0] is not None else a.get("split")
    n, k = shape[ax], len(node.output)
    if sizes is None:
        step = -(-n // k)
        sizes = [min(step, n - s) for s in range(0, n, step)]
    sizes = [int(v) for v in np.ravel(sizes)]
    if len(sizes) != k or sum(sizes) != n or min(sizes) < 1:
        raise InputError(f"{_label(node)}: split sizes {sizes} do not cut axis {ax + 1} of "
                         f"{(1, *shape)} into its {k} outputs")
    return b.split(name, x, ax, sizes)


def _gather(node, a, b, x, args, name, onnx_shape) -> str:
    """Gather of one constant index (``x[:, 0]``): a ``select`` layer."""
    shape = b.shape(x)
    idx = args[0]
    if idx is None or idx.ndim != 0 or idx.dtype.kind not in "iu":
        raise InputError(f"{_label(node)}: only a gather of one constant index is supported, got "
                         f"indices {None if idx is None else idx.tolist()} on {(1, *shape)}")
    ax = _sample_axis(node, _int(node, a, "axis", 0), b, x)
    return b.add_layer(name, Select(ax, int(idx)), [x])


def _expand(node, a, b, x, args, name, onnx_shape) -> str:
    shape = b.shape(x)
    target = args[0]
    if target is None:
        raise InputError(f"{_label(node)}: its shape must be a constant")
    full = np.broadcast_shapes(b.full(x), tuple(int(v) for v in target))
    want = _sample_shape(tuple(int(d) for d in full))
    return x if want == shape else b.add_layer(name, Expand(want), [x])


def _resize(node, a, b, x, args, name, onnx_shape) -> str:
    """Resize/Upsample of a (C, ...) map: an ``upsample`` layer to ONNX's output size
    (from ``sizes``, or ``scales`` rounded down)."""
    shape = b.shape(x)
    scales = args[1] if node.op_type == "Resize" and len(args) > 1 else args[0] if args else None
    sizes = args[2] if node.op_type == "Resize" and len(args) > 2 else None
    if sizes is not None and sizes.size:
        out = tuple(int(v) for v in sizes[-len(shape):])
    elif scales is not None and scales.size:
        out = tuple(int(math.floor(d * float(f))) for d, f in zip(shape, scales[-len(shape):]))
    else:
        raise InputError(f"{_label(node)}: its scales or sizes must be constants")
    if out[0] != shape[0] or (scales is not None and scales.size and float(np.ravel(scales)[0]) != 1):
        raise InputError(f"{_label(node)}: only resizing the spatial axes is supported, got "
                         f"{(1, *shape)} to {(1, *out)}")
    mode = a.get("mode", b"nearest")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    return b.add_layer(name, Upsample(out[1:], mode), [x])


DATA_OPS = {"Transpose": _transpose, "Slice": _slice, "Split": _split, "Gather": _gather,
            "Expand": _expand, "Resize": _resize, "Upsample": _resize}


def _layernorm(node, a, b: NetworkBuilder, x: str, scale, bias, name: str) -> str:
    """LayerNormalization over the axes from ``axis`` on (default the last)."""
    shape = b.shape(x)
    ax = _sample_axis(node, _int(node, a, "axis", -1), b, x)
    normalized = shape[ax:]
    for t, c in ((node.input[1], scale), (node.input[2] if len(node.input) > 2 else "", bias)):
        if c is not None and not _broadcasts_to(c, normalized):
            raise _shape_error(node, t, c.shape, f"{normalized}, the normalized axes")
    if scale is None:
        raise InputError(f"{_label(node)}: its scale must be a constant")
    return b.add_layer(name, LayerNorm(normalized, True, bias is not None), [x])


def _conv(node, a: dict, b: NetworkBuilder, xw, bias, name: str, weights, biases, producer_of) -> str:
    """A 2-D convolution of a (C, H, W) map, or a 1-D one of a (C, L) sequence (imported
    as hwprune's conv1d: a view to (C, 1, L), the 2-D convolution ``name`` with kernel
    (1, k), a view back); groups, dilation, ``pads``/``auto_pad``."""
    x, w, in_shape = xw
    nsp = len(in_shape) - 1                       # spatial axes
    if nsp not in (1, 2):
        raise ShapeError(f"{_label(node)}: input {node.input[0]!r} has shape (batch, "
                         f"{', '.join(map(str, in_shape))}); hwprune imports 2-D convolutions of "
                         "(batch, C, H, W) maps and 1-D convolutions of (batch, C, L) sequences")
    if w.ndim != nsp + 2 or min(w.shape) < 1:
        raise _shape_error(node, node.input[1], w.shape, "(M, C/group, " + ("kH, kW" if nsp == 2 else "k")
                           + ") with every dimension >= 1")
    kernel = tuple(int(k) for k in w.shape[2:])
    if "kernel_shape" in a and _ints(node, a, "kernel_shape", nsp, None, 1, "kernel") != kernel:
        raise ShapeError(f"{_label(node)}: kernel_shape {list(a['kernel_shape'])} does not match "
                         f"the weight {node.input[1]!r} of shape {tuple(w.shape)}")
    dilation = _ints(node, a, "dilations", nsp, [1] * nsp, 1, "dilation")
    group = _int(node, a, "group", 1)
    m = int(w.shape[0])
    if group < 1 or m % group or in_shape[0] % group:
        raise ShapeError(f"{_label(node)}: group {group} must be >= 1 and divide the output "
                         f"channels {m} and the input channels {in_shape[0]}")
    if in_shape[0] != w.shape[1] * group:
        raise _shape_error(node, node.input[1], w.shape,
                           f"({m}, {in_shape[0] // group}, " + ("kH, kW" if nsp == 2 else "k")
                           + f") for input channels {in_shape[0]} in {group} group(s)")
    if bias is not None and tuple(bias.shape) != (m,):
        raise _shape_error(node, node.input[2], bias.shape, f"({m},), one per output channel")
    stride = _ints(node, a, "strides", nsp, [1] * nsp, 1, "stride")
    begin, end = _padding(node, a, in_shape[1:], kernel, stride, dilation)
    has_bias = bias is not None
    if nsp == 2:
        out = b.add_layer(name, Conv2d(m, kernel, stride, begin, group, has_bias, end, dilation), [x])
        layer = out
    else:
        out = b.conv1d(name, x, m, kernel[0], stride[0], begin[0], group, has_bias, dilation[0],
                       end[0] if end[0] != begin[0] else None)
        layer, w = name, w.reshape(m, w.shape[1], 1, kernel[0])
    weights[layer] = w.astype(np.float32)
    biases[layer] = (bias if has_bias else np.zeros(m)).astype(np.float32)
    if layer == out:
        producer_of[out] = "conv"        # a batch norm or bias after it folds into it
    return out


def _reduce(node, a: dict, b: NetworkBuilder, x: str, axes_input, name: str) -> str:
    """ReduceMean/Max/Min/Sum. Over the two spatial axes of a (C, H, W) map, keeping
    them, it is a global pool (torch's dynamo exporter writes adaptive pooling to 1x1
    this way); any other reduction is a ``reduce`` layer. The axes are an attribute up
    to opset 17 and a constant input from opset 18; none means all axes."""
    shape = b.shape(x)
    axes = axes_input if axes_input is not None else a.get("axes")
    if axes is None or np.size(axes) == 0:
        if _int(node, a, "noop_with_empty_axes", 0):
            return x
        axes = list(range(b.off(x), len(b.full(x))))
    axes = sorted({_sample_axis(node, int(v), b, x) for v in np.ravel(axes)})
    keep = bool(_int(node, a, "keepdims", 1))
    mode = node.op_type[len("Reduce"):].lower()
    if len(shape) == 3 and axes == [1, 2] and keep and mode in ("mean", "max") and b.off(x):
        return b.add_layer(name, GlobalPool("avg" if mode == "mean" else "max"), [x])
    return b.add_layer(name, Reduce(mode, tuple(axes), keep), [x])


def load_onnx(path: str | Path) -> ImportedModel:
    """Import the ONNX model at ``path`` (see the module docstring)."""
    try:
        import onnx
    except ImportError:
        raise InputError("reading .onnx files needs the onnx package: pip install 'hwprune[onnx]'") from None
    path = Path(path)
    try:
        model = onnx.load(str(path))
    except FileNotFoundError:
        raise InputError(f"cannot read {path}: no such file") from None
    except Exception as exc:  # onnx raises DecodeError and friends
        raise InputError(f"cannot read {path} as an ONNX model: {exc}") from None
    from .onnx_simplify import simplify
    try:
        return _import(simplify(model), path)
    except _Malformed as exc:
        raise InputError(f"{path}: {exc}") from None


def _import(model, path: Path) -> ImportedModel:
    graph = model.graph
    onnx_shape = _onnx_shapes(model)
    consts = {t.name: _to_array(t, f"initializer {t.name!r}") for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            if len(node.output) != 1:
                raise InputError(f"{_label(node)}: needs one output, has {len(node.output)}")
            value = _attrs(node).get("value")
            if value is not None:
                consts[node.output[0]] = _to_array(value, f"{_label(node)}: value")
    inputs = [i for i in graph.input if i.name not in consts]
    if len(inputs) != 1:
        raise InputError(f"{path}: hwprune reads models with one input tensor, got "
                         f"{[i.name for i in inputs]}")
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) < 2 or any(d <= 0 for d in dims[1:]):
        raise InputError(f"{path}: the input {inputs[0].name!r} needs a fixed shape after the batch "
                         f"dimension, got {dims}")
    if any(d > MAX_DIM for d in dims[1:]) or math.prod(dims[1:]) > MAX_ELEMENTS:
        raise InputError(f"{path}: the input {inputs[0].name!r} has shape {dims}; accepted: each "
                         f"dimension at most {MAX_DIM}, at most {MAX_ELEMENTS} elements per sample")
    b = _Builder(graph.name or path.stem, tuple(dims[1:]))
    tensor = {inputs[0].name: b.input}
    consumers: dict[str, int] = {}
    readers: dict[str, list] = {}
    for node in graph.node:
        for i in node.input:
            consumers[i] = consumers.get(i, 0) + 1
            readers.setdefault(i, []).append(node)
    weights, biases, skipped = {}, {}, []
    producer_of: dict[str, str] = {}       # builder layer -> op kind ("conv", "fc", ...)
    next_suffix: dict[str, int] = {}       # base name -> next suffix to try (linear de-dup)

    def name_of(node) -> str:
        base = node.name or node.output[0]
        if base not in b._shapes:
            return base
        k = next_suffix.get(base, 2)
        while f"{base}_{k}" in b._shapes:
            k += 1
        next_suffix[base] = k + 1
        return f"{base}_{k}"

    for node in graph.node:
        if node.op_type == "Constant":
            continue
        before = len(b._layers)
        try:
            out = _node(node, b, tensor, consts, consumers, weights, biases, producer_of,
                        skipped, name_of, onnx_shape, readers)
        except InputError:
            raise
        except (ValueError, TypeError, KeyError, IndexError, ZeroDivisionError, OverflowError,
                AttributeError, MemoryError) as exc:
            # A case the checks above did not foresee: still one line naming the node.
            raise _Malformed(f"{_label(node)} is malformed ({type(exc).__name__}: {exc})") from None
        outs = out if isinstance(out, list) else [out]
        moved = any(tensor.get(t) in b.batchless for t in node.input)
        made = {lay.name for lay in b._layers[before:]}
        for t, out in zip(node.output, outs):
            full = onnx_shape.get(t)
            ours = b.shape(out)
            if full is not None and (moved or full[0] != 1):
                want = _sample_shape(full)
                if _unit_free(ours) == _unit_free(want) and (ours != want or out not in made and (
                        full[0] != 1) != (out in b.batchless)):
                    # Only axes of 1 (the batch of 1 among them) moved: a view.
                    view, k = f"{t}/view", 2
                    while view in b._shapes:
                        view, k = f"{t}/view{k}", k + 1
                    out = b.reshape(view, out, want)
                    ours = want
                if full[0] != 1:
                    b.batchless.add(out)
            tensor[t] = out
            expected = None if full is None else _sample_shape(full) if (moved or full[0] != 1) \
                else full[1:]
            if expected is not None and expected != ours:
                raise ShapeError(f"{_label(node)}: hwprune infers output shape {ours} for {t!r}, "
                                 f"ONNX's shape inference {expected} (batch excluded); hwprune "
                                 "does not import what it would count differently")
    net = b.build(description=f"imported from {path.name}", source=str(path))
    if not any(lay.kind in ("conv", "fc") for lay in net.layers):
        raise InputError(f"{path}: the model has no convolution or fully connected layer")
    return ImportedModel(net, weights, biases, tuple(skipped))


def _node(node, b: NetworkBuilder, tensor, consts, consumers, weights, biases, producer_of,
          skipped, name_of, onnx_shape, readers) -> str | list[str]:
    """Add one node's layer; returns the builder name of its output."""
    op, a = node.op_type, _attrs(node)
    if len(node.output) < 1 or not node.output[0]:
        raise InputError(f"{_label(node)}: has no output")
    need = MIN_INPUTS.get(op, 1)
    if len(node.input) < need or not node.input[0]:
        raise InputError(f"{_label(node)}: needs at least {need} input(s), has "
                         f"{[i for i in node.input]}")
    name = name_of(node)

    def src(i: int = 0) -> str:
        t = node.input[i]
        if t not in tensor:
            raise InputError(f"{_label(node)} reads {t!r}, which no supported node produced")
        return tensor[t]

    def const(i: int, what: str) -> np.ndarray | None:
        """Optional constant input ``i`` (None when absent or empty)."""
        if len(node.input) <= i or not node.input[i]:
            return None
        c = consts.get(node.input[i])
        if c is None:
            raise InputError(f"{_label(node)}: its {what} {node.input[i]!r} must be a constant "
                             "(an initializer)")
        return c

    def weighted() -> tuple[str, np.ndarray, tuple[int, ...]]:
        """The data input, the constant weight and the data's shape of a Conv/Gemm/MatMul."""
        x, w = src(), const(1, "weight")
        if w is None:
            raise InputError(f"{_label(node)}: its weight input is missing")
        return x, w, b.shape(x)

    if op == "Conv":
        return _conv(node, a, b, weighted(), const(2, "bias"), name, weights, biases, producer_of)
    if op == "MatMul" and (node.input[1] not in consts or node.input[0] in consts):
        ref = [tensor[t] for t in node.input[:2] if t in tensor]
        if not ref:
            src()                                        # the error naming the input
        return b.matmul(name, *(_operand(t, node, b, tensor, consts, ref[0]) for t in node.input[:2]))
    if op == "MatMul" and node.input[0] in tensor and len(b.shape(tensor[node.input[0]])) > 1:
        return _token_fc(node, b, weighted(), name, readers, consts, consumers, weights, biases, producer_of)
    if op in ("Gemm", "MatMul"):
        x, w, in_shape = weighted()
        tokens = len(in_shape) == 2 and x in b.batchless     # (T * batch, features)
        if tokens:
            in_shape = in_shape[1:]
        if len(in_shape) != 1:
            raise ShapeError(f"{_label(node)}: input {node.input[0]!r} has shape (batch, "
                             f"{', '.join(map(str, in_shape))}); accepted: (batch, features), "
                             "e.g. after a Flatten")
        k = in_shape[0]
        if w.ndim != 2:
            raise _shape_error(node, node.input[1], w.shape, f"a 2-D weight ({k}, N)"
                               + (" or (N, K) with transB=1" if op == "Gemm" else ""))
        if op == "Gemm":
            if _int(node, a, "transA", 0):
                raise InputError(f"{_label(node)}: transA=1 (input {node.input[0]!r} of shape "
                                 f"({k}, batch)) is not supported; accepted: transA=0")
            trans_b = _int(node, a, "transB", 0)
            wt = w if trans_b else w.T                   # (N, K)
            if wt.shape[1] != k:
                expect = f"(N, {k})" if trans_b else f"({k}, N)"
                raise _shape_error(node, node.input[1], w.shape, f"{expect} with transB={trans_b} "
                                   f"for input {node.input[0]!r} of {k} features")
            wt = wt * _float(node, a, "alpha", 1.0)
            c = const(2, "bias C")
            n = wt.shape[0]
            if c is not None and not _broadcasts_to(c, (1, n)):
                raise _shape_error(node, node.input[2], c.shape, f"({n},) or (1, {n}) or a scalar")
            bias = None if c is None else np.broadcast_to(c * _float(node, a, "beta", 1.0),
                                                          (1, n)).reshape(n)
        else:
            if w.shape[0] != k:
                raise _shape_error(node, node.input[1], w.shape,
                                   f"({k}, N) for input {node.input[0]!r} of {k} features")
            wt = w.T
            # A bias Add after it folds into it: give the layer its bias now.
            bias = np.zeros(w.shape[1]) if _bias_add(node, readers, consts, consumers, (w.shape[1],)) \
                else None
        n = int(wt.shape[0])
        if n < 1:
            raise _shape_error(node, node.input[1], w.shape, "at least one output feature")
        out = (b.token_fc if tokens else b.fc)(name, x, n, bias is not None)
        weights[out] = np.ascontiguousarray(wt, dtype=np.float32)
        biases[out] = (bias if bias is not None else np.zeros(n)).astype(np.float32)
        producer_of[out] = "fc"
        return out
    if op in ("MaxPool", "AveragePool"):
        x = src()
        in_shape = b.shape(x)
        if len(in_shape) != 3:
            raise ShapeError(f"{_label(node)}: input {node.input[0]!r} has shape (batch, "
                             f"{', '.join(map(str, in_shape))}); accepted: (batch, C, H, W)")
        kernel = _ints(node, a, "kernel_shape", 2, None, 1, "the pooling window")
        stride = _ints(node, a, "strides", 2, [1, 1], 1, "stride; ONNX's default is 1")
        if _ints(node, a, "dilations", 2, [1, 1], 1, "dilation") != (1, 1):
            raise InputError(f"{_label(node)}: dilation {list(a['dilations'])} is not supported; "
                             "accepted: 1")
        if len(node.output) > 1 and node.output[1]:
            raise InputError(f"{_label(node)}: the Indices output is not supported")
        begin, end = _padding(node, a, in_shape[1:], kernel, stride)
        if any(p >= k for p, k in zip(begin + end, kernel + kernel)):
            raise InputError(f"{_label(node)}: padding {list(begin + end)} must be smaller than "
                             f"the window {list(kernel)}")
        return b.add_layer(name, Pool2d("max" if op == "MaxPool" else "avg", kernel, stride, begin,
                                        bool(_int(node, a, "ceil_mode", 0)), end), [x])
    if op in ("GlobalAveragePool", "GlobalMaxPool"):
        return b.add_layer(name, GlobalPool("avg" if op == "GlobalAveragePool" else "max"), [src()])
    if op in ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum"):
        return _reduce(node, a, b, src(), const(1, "axes"), name)
    if op == "BatchNormalization":
        x = src()
        params = [const(i, what) for i, what in
                  enumerate(("input", "scale", "bias", "mean", "variance")) if i > 0]
        if any(v is None for v in params):
            raise InputError(f"{_label(node)}: its scale, bias, mean and variance must be constants")
        c = b.shape(x)[0]
        for i, v in enumerate(params, start=1):
            if tuple(v.shape) != (c,):
                raise _shape_error(node, node.input[i], v.shape, f"({c},), one per channel of "
                                   f"{node.input[0]!r}")
        gamma, beta, mean, var = params
        eps = _float(node, a, "epsilon", 1e-5)
        if not np.all(np.isfinite(var)) or np.any(var.astype(np.float64) + eps <= 0):
            raise InputError(f"{_label(node)}: variance {node.input[4]!r} + epsilon must be > 0 "
                             "and finite in every channel")
        if producer_of.get(x) == "conv" and consumers.get(node.input[0], 0) == 1:
            weights[x], biases[x] = fold_batchnorm(weights[x], biases[x], gamma, beta, mean, var, eps)
            return x                                    # folded: the conv now produces it
        return b.batchnorm(name, x)
    if op in ELEMENTWISE_FN:
        return _elementwise(node, b, tensor, consts, consumers, biases, producer_of, name)
    if op == "Concat":
        if not any(t in tensor for t in node.input):
            src()                                        # the error naming the input
        ref = max((tensor[t] for t in node.input if t in tensor), key=lambda r: len(b.shape(r)))
        xs = [_operand(t, node, b, tensor, consts, ref) for t in node.input]
        ranks = {len(b.shape(t)) + 1 for t in xs}       # with the batch
        axis = _int(node, a, "axis", 1)
        if len(ranks) != 1 or axis not in (1, 1 - min(ranks)):
            raise InputError(f"{_label(node)}: only concatenation on axis 1 (channels, features or "
                             f"tokens) of tensors of one rank is supported, got axis {axis} of "
                             f"{[(1, *b.shape(t)) for t in xs]}")
        return b.add_layer(name, Concat(0), xs)        # of one input: a copy, as torch.cat
    if op in ("Flatten", "Reshape", "Squeeze", "Unsqueeze"):
        return _reshape(node, a, b, src(), const(1, "target shape or axes") if len(node.input) > 1 else None,
                        name)
    if op in DATA_OPS:
        return DATA_OPS[op](node, a, b, src(), [const(i, "input") for i in range(1, len(node.input))],
                            name, onnx_shape)
    if op in ACTIVATION_FN:
        return b.activation(name, src(), ACTIVATION_FN[op])
    if op == "LayerNormalization":
        return _layernorm(node, a, b, src(), const(1, "scale"), const(2, "bias"), name)
    if op in PASS_THROUGH:
        return src()
    return _unknown(node, b, tensor, consts, onnx_shape, skipped)


def _input_shapes(node, b: NetworkBuilder, tensor, consts) -> list:
    """Each input's shape, batch included for activations ('?' where none is known)."""
    shapes = []
    for t in node.input:
        if t in consts:
            shapes.append(tuple(consts[t].shape))
        elif t in tensor:
            shapes.append((1, *b.shape(tensor[t])))
        else:
            shapes.append("?")
    return shapes


def _unknown(node, b: NetworkBuilder, tensor, consts, onnx_shape, skipped) -> str:
    """An operator hwprune does not know: an error naming it, its node and its input
    shapes, unless it has no constant inputs and leaves its one activation's shape
    unchanged (then skipped with a warning, as ``skip_unsupported`` rules)."""
    op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
    where = node.name or node.output[0]
    shapes = _input_shapes(node, b, tensor, consts)
    weights = [t for t in node.input if t in consts]
    data = [t for t in node.input if t and t not in consts]
    out = onnx_shape.get(node.output[0])
    out = None if out is None else _sample_shape(out) if (out[0] != 1 or any(
        tensor.get(t) in b.batchless for t in data)) else out[1:]
    if weights or len(data) != 1 or data[0] not in tensor or out != b.shape(tensor[data[0]]):
        why = (f"it has weights (constant inputs {weights})" if weights else
               f"it reads {len(data)} activations" if len(data) != 1 else
               f"it reads {data[0]!r}, which no supported node produced" if data[0] not in tensor else
               f"it changes its input's shape (to {None if out is None else (1, *out)})")
        raise InputError(f"unsupported operation {op} at {where!r}: {why}, so hwprune cannot count "
                         f"it; input shapes {', '.join(map(str, shapes))}; the supported ONNX "
                         "operators are listed in docs/importing.md")
    x = tensor[data[0]]
    skip_unsupported(op, where, False, b.shape(x), out, skipped)
    return x
