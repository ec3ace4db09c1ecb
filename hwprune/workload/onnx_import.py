"""Read an ONNX model into a hwprune workload, with its weights (``pip install onnx``).

Supported operators: Conv (groups; explicit ``pads``, symmetric or not, or
``auto_pad`` VALID/SAME_UPPER/SAME_LOWER; no dilation), Gemm and MatMul (with a
constant weight; a following Add of a constant becomes the bias), MaxPool and
AveragePool (``pads``/``auto_pad`` as Conv, ``ceil_mode``), GlobalAveragePool and
GlobalMaxPool, BatchNormalization (folded into the convolution before it when that
convolution feeds nothing else; otherwise kept as a batch-norm layer), Add and Sum of
two tensors, Concat (channels), Flatten and Reshape to ``(batch, features)``, and the
weightless pass-throughs Relu, LeakyRelu, the parameter-free activations (Sigmoid,
Tanh, Clip, HardSigmoid, HardSwish, Elu, Selu, Gelu, Softplus, Softsign, Softmax,
LogSoftmax), Dropout and Identity.

Every initialiser is checked against the node that reads it (a weight that does not
match the input's channels or features, a bias of the wrong length: a ``ShapeError``
naming the node, the tensor and both shapes), and every attribute against what the
operator allows. Shapes come from hwprune's own inference as layers are added, and are
then checked against ONNX's own shape inference wherever it has one: a disagreement is
an error, never a silently different count. A malformed file is an ``InputError``
naming the node, never a traceback.

Any other operator is an error naming it and its node, unless it has no constant inputs
(so no weights and no MACs) and leaves its input's shape unchanged: then it is skipped
with a warning, its output read as its input.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import InputError, ShapeError
from .builder import NetworkBuilder
from .imported import ImportedModel, fold_batchnorm, skip_unsupported, warn_skip
from .ops import Conv2d, GlobalPool, Pool2d

PASS_THROUGH = {"Relu", "LeakyRelu", "Sigmoid", "Tanh", "Clip", "HardSigmoid", "HardSwish", "Elu",
                "Selu", "Gelu", "Softplus", "Softsign", "Softmax", "LogSoftmax", "Dropout",
                "Identity", "Relu6"}

MAX_DIM = 2**31 - 1            # one dimension of a tensor (ONNX runtimes use int32 sizes)
MAX_WEIGHT_ELEMENTS = 2**31    # elements of one initialiser read into memory
MAX_ELEMENTS = 2**48           # elements of one activation (batch excluded)

# Inputs each operator needs (at least), so that a short node is an error, not an IndexError.
MIN_INPUTS = {"Conv": 2, "Gemm": 2, "MatMul": 2, "MaxPool": 1, "AveragePool": 1,
              "GlobalAveragePool": 1, "GlobalMaxPool": 1, "BatchNormalization": 5, "Add": 2,
              "Sum": 1, "Concat": 1, "Flatten": 1, "Reshape": 2}

_NUMERIC = ("f", "i", "u", "b")     # numpy kinds a weight may have


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


def _padding(node, a: dict, in_hw, kernel, stride) -> tuple[tuple[int, int], tuple[int, int]]:
    """(padding at the start, padding at the end) per spatial axis, from ``pads`` or
    ``auto_pad`` as ONNX defines them: SAME_* pads so that the output is
    ``ceil(in / stride)``, the odd pixel at the end (SAME_UPPER) or the start
    (SAME_LOWER); VALID pads nothing."""
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode(errors="replace") if isinstance(auto, bytes) else str(auto)
    if auto not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise InputError(f"{_label(node)}: auto_pad {auto!r} is not one of NOTSET, VALID, "
                         "SAME_UPPER, SAME_LOWER")
    if auto == "NOTSET":
        pads = _ints(node, a, "pads", 4, [0, 0, 0, 0], 0, "padding begin and end per axis")
        return pads[:2], pads[2:]
    if "pads" in a and any(int(p) for p in a["pads"]):
        raise InputError(f"{_label(node)}: pads {list(a['pads'])} given together with auto_pad "
                         f"{auto}; ONNX allows only one")
    if auto == "VALID":
        return (0, 0), (0, 0)
    begin, end = [], []
    for size, k, s in zip(in_hw, kernel, stride):
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
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
    """ONNX's own inferred shapes (batch excluded) of the tensors it could infer fully."""
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
        if len(dims) >= 1 and all(d.HasField("dim_value") for d in dims[1:]):
            out[vi.name] = tuple(int(d.dim_value) for d in dims[1:])
    return out


def _global_reduce(node, a: dict, b: NetworkBuilder, x: str, axes_input, name: str) -> str:
    """ReduceMean/ReduceMax over the two spatial axes of a (batch, C, H, W) map: a global
    pool (torch's dynamo exporter writes ``x.mean((2, 3), keepdim=True)`` and adaptive
    pooling to 1x1 this way); ``keepdims=0`` adds a flatten to (batch, C). The axes are an
    attribute up to opset 17 and a constant input from opset 18."""
    shape = b.shape(x)
    axes = axes_input if axes_input is not None else a.get("axes")
    axes = None if axes is None else sorted(int(v) % (len(shape) + 1) for v in np.ravel(axes))
    if len(shape) != 3 or axes != [2, 3]:
        raise InputError(f"{_label(node)}: input {node.input[0]!r} of shape {(1, *shape)}, axes "
                         f"{axes}: only a reduction over the spatial axes (2, 3) of a (batch, C, H, W) "
                         "map is supported (a global pool)")
    pooled = b.add_layer(name, GlobalPool("avg" if node.op_type == "ReduceMean" else "max"), [x])
    if _int(node, a, "keepdims", 1):
        return pooled
    return b.flatten(f"{name}/flatten", pooled)


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
    b = NetworkBuilder(graph.name or path.stem, tuple(dims[1:]))
    tensor = {inputs[0].name: b.input}
    consumers: dict[str, int] = {}
    for node in graph.node:
        for i in node.input:
            consumers[i] = consumers.get(i, 0) + 1
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
        try:
            out = _node(node, b, tensor, consts, consumers, weights, biases, producer_of,
                        skipped, name_of, onnx_shape)
        except InputError:
            raise
        except (ValueError, TypeError, KeyError, IndexError, ZeroDivisionError, OverflowError,
                AttributeError, MemoryError) as exc:
            # A case the checks above did not foresee: still one line naming the node.
            raise _Malformed(f"{_label(node)} is malformed ({type(exc).__name__}: {exc})") from None
        for t in node.output[:1]:
            tensor[t] = out
            expected = onnx_shape.get(t)
            ours = b.shape(out)
            if expected is not None and expected != ours:
                raise ShapeError(f"{_label(node)}: hwprune infers output shape {ours} for {t!r}, "
                                 f"ONNX's shape inference {expected} (batch excluded); hwprune "
                                 "does not import what it would count differently")
    net = b.build(description=f"imported from {path.name}", source=str(path))
    if not net.weighted_layers:
        raise InputError(f"{path}: the model has no convolution or fully connected layer")
    return ImportedModel(net, weights, biases, tuple(skipped))


def _node(node, b: NetworkBuilder, tensor, consts, consumers, weights, biases, producer_of,
          skipped, name_of, onnx_shape) -> str:
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
        x, w, in_shape = weighted()
        if len(in_shape) != 3:
            raise ShapeError(f"{_label(node)}: input {node.input[0]!r} has shape (batch, "
                             f"{', '.join(map(str, in_shape))}); hwprune imports 2-D convolutions "
                             "of (batch, C, H, W) maps")
        if w.ndim != 4 or min(w.shape) < 1:
            raise _shape_error(node, node.input[1], w.shape, "(M, C/group, kH, kW) with every "
                               "dimension >= 1")
        kernel = tuple(int(k) for k in w.shape[2:])
        if "kernel_shape" in a and _ints(node, a, "kernel_shape", 2, None, 1, "kernel") != kernel:
            raise ShapeError(f"{_label(node)}: kernel_shape {list(a['kernel_shape'])} does not match "
                             f"the weight {node.input[1]!r} of shape {tuple(w.shape)}")
        if _ints(node, a, "dilations", 2, [1, 1], 1, "dilation") != (1, 1):
            raise InputError(f"{_label(node)}: dilation {list(a['dilations'])} is not supported; "
                             "accepted: 1")
        group = _int(node, a, "group", 1)
        m = int(w.shape[0])
        if group < 1 or m % group or in_shape[0] % group:
            raise ShapeError(f"{_label(node)}: group {group} must be >= 1 and divide the output "
                             f"channels {m} and the input channels {in_shape[0]}")
        if in_shape[0] != w.shape[1] * group:
            raise _shape_error(node, node.input[1], w.shape,
                               f"({m}, {in_shape[0] // group}, kH, kW) for input channels "
                               f"{in_shape[0]} in {group} group(s)")
        bias = const(2, "bias")
        if bias is not None and tuple(bias.shape) != (m,):
            raise _shape_error(node, node.input[2], bias.shape, f"({m},), one per output channel")
        stride = _ints(node, a, "strides", 2, [1, 1], 1, "stride")
        begin, end = _padding(node, a, in_shape[1:], kernel, stride)
        out = b.add_layer(name, Conv2d(m, kernel, stride, begin, group, bias is not None, end), [x])
        weights[out] = w.astype(np.float32)
        biases[out] = (bias if bias is not None else np.zeros(m)).astype(np.float32)
        producer_of[out] = "conv"
        return out
    if op in ("Gemm", "MatMul"):
        x, w, in_shape = weighted()
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
            wt, bias = w.T, None
        n = int(wt.shape[0])
        if n < 1:
            raise _shape_error(node, node.input[1], w.shape, "at least one output feature")
        out = b.fc(name, x, n, bias is not None)
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
    if op in ("ReduceMean", "ReduceMax"):
        return _global_reduce(node, a, b, src(), const(1, "axes"), name)
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
    if op in ("Add", "Sum"):
        const_at = [i for i, t in enumerate(node.input) if t in consts]
        if const_at and len(node.input) == 2:
            x = src(1 - const_at[0])
            c = consts[node.input[const_at[0]]]
            shape = (1, *b.shape(x))
            if not _broadcasts_to(c, shape):
                raise _shape_error(node, node.input[const_at[0]], c.shape,
                                   f"a constant that broadcasts to the tensor it is added to, "
                                   f"(batch, {', '.join(map(str, shape[1:]))})")
            per_unit = c.size == shape[1] and (len(shape) == 2 or
                                               c.ndim >= 3 and c.shape[-2:] == (1, 1))
            if producer_of.get(x) in ("fc", "conv") and per_unit \
                    and consumers.get(node.input[1 - const_at[0]], 0) == 1:
                biases[x] = biases[x] + c.reshape(-1).astype(np.float32)
                return x
            skipped.append(f"{node.name or node.output[0]} (Add of a constant)")
            warn_skip(f"skipped node {node.name!r} (Add of a constant): no weights, no MACs")
            return x
        if any(not t for t in node.input):
            raise InputError(f"{_label(node)}: has an empty input name in {list(node.input)}")
        if len(node.input) == 1:
            return src()                                 # a Sum of one tensor is that tensor
        return b.add(name, [src(i) for i in range(len(node.input))])
    if op == "Concat":
        xs = [src(i) for i in range(len(node.input))]
        ranks = {len(b.shape(t)) + 1 for t in xs}       # with the batch
        axis = _int(node, a, "axis", 1)
        if len(ranks) != 1 or axis not in (1, 1 - min(ranks)):
            raise InputError(f"{_label(node)}: only concatenation on axis 1 (channels or "
                             f"features) of tensors of one rank is supported, got axis {axis} of "
                             f"{[(1, *b.shape(t)) for t in xs]}")
        if len(xs) == 1:
            return xs[0]
        return b.concat(name, xs)
    if op in ("Flatten", "Reshape"):
        x = src()
        shape = b.shape(x)
        if op == "Reshape":
            target = const(1, "target shape")
            flat = target is not None and target.ndim == 1 and len(target) == 2 and \
                target.dtype.kind in "iu" and int(target[1]) in (-1, math.prod(shape)) and \
                int(target[0]) in (0, 1, -1)
            if not flat:
                raise InputError(f"{_label(node)}: only a reshape to (batch, features) is "
                                 f"supported, got target {None if target is None else target.tolist()}")
        elif _int(node, a, "axis", 1) != 1:
            raise InputError(f"{_label(node)}: only axis 1 is supported")
        return b.flatten(name, x) if len(shape) > 1 else x
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
