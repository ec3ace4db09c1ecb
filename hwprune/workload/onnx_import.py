"""Read an ONNX model into a hwprune workload, with its weights (``pip install onnx``).

Supported operators: Conv (groups; symmetric padding, no dilation), Gemm and MatMul
(with a constant weight; a following Add of a constant becomes the bias), MaxPool and
AveragePool, GlobalAveragePool and GlobalMaxPool, BatchNormalization (folded into the
convolution before it when that convolution feeds nothing else; otherwise kept as a
batch-norm layer), Add and Sum of two tensors, Concat (channels), Flatten and Reshape
to ``(batch, features)``, and the weightless pass-throughs Relu, LeakyRelu, the
parameter-free activations (Sigmoid, Tanh, Clip, HardSigmoid, HardSwish, Elu, Selu, Gelu, Softplus,
Softsign, Softmax, LogSoftmax), Dropout and Identity.

Shapes come from hwprune's own shape inference as layers are added (checked against
ONNX's where it has one). Any other operator is an error naming it and its node, unless
it has no constant inputs (so no weights and no MACs) and leaves its input's shape
unchanged: then it is skipped with a warning, its output read as its input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from .builder import NetworkBuilder
from .imported import ImportedModel, fold_batchnorm, skip_unsupported, warn_skip
from .ops import GlobalPool, Pool2d

PASS_THROUGH = {"Relu", "LeakyRelu", "Sigmoid", "Tanh", "Clip", "HardSigmoid", "HardSwish", "Elu",
                "Selu", "Gelu", "Softplus", "Softsign", "Softmax", "LogSoftmax", "Dropout",
                "Identity", "Relu6"}


def _attrs(node) -> dict:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _sym_pads(pads, node) -> tuple[int, int]:
    if not pads:
        return (0, 0)
    half = len(pads) // 2
    if list(pads[:half]) != list(pads[half:]):
        raise InputError(f"node {node.name!r} ({node.op_type}): asymmetric padding {list(pads)} is not "
                         "supported; accepted: the same padding at both ends of each axis")
    return tuple(int(p) for p in pads[:half])


def load_onnx(path: str | Path) -> ImportedModel:
    """Import the ONNX model at ``path`` (see the module docstring)."""
    try:
        import onnx
        from onnx import numpy_helper, shape_inference
    except ImportError:
        raise InputError("reading .onnx files needs the onnx package: pip install 'hwprune[onnx]'") from None
    path = Path(path)
    try:
        model = onnx.load(str(path))
    except FileNotFoundError:
        raise InputError(f"cannot read {path}: no such file") from None
    except Exception as exc:  # onnx raises DecodeError and friends
        raise InputError(f"cannot read {path} as an ONNX model: {exc}") from None
    try:
        model = shape_inference.infer_shapes(model)
    except Exception:
        pass                      # our own shape inference still runs
    graph = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            value = _attrs(node).get("value")
            if value is not None:
                consts[node.output[0]] = numpy_helper.to_array(value)
    inputs = [i for i in graph.input if i.name not in consts]
    if len(inputs) != 1:
        raise InputError(f"{path}: hwprune reads models with one input tensor, got "
                         f"{[i.name for i in inputs]}")
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) < 2 or any(d <= 0 for d in dims[1:]):
        raise InputError(f"{path}: the input {inputs[0].name!r} needs a fixed shape after the batch "
                         f"dimension, got {dims}")
    b = NetworkBuilder(graph.name or path.stem, tuple(dims[1:]))
    tensor = {inputs[0].name: b.input}
    consumers: dict[str, int] = {}
    for node in graph.node:
        for i in node.input:
            consumers[i] = consumers.get(i, 0) + 1
    weights, biases, skipped = {}, {}, []
    producer_of: dict[str, str] = {}       # builder layer -> op kind ("conv", "fc", ...)

    def name_of(node) -> str:
        base = node.name or node.output[0]
        name, k = base, 1
        while name in b._shapes:
            k += 1
            name = f"{base}_{k}"
        return name

    def src(node, i: int = 0) -> str:
        t = node.input[i]
        if t not in tensor:
            raise InputError(f"node {node.name!r} ({node.op_type}) reads {t!r}, which no supported "
                             "node produced")
        return tensor[t]

    for node in graph.node:
        op, a = node.op_type, _attrs(node)
        if op == "Constant":
            continue
        name = name_of(node)
        if op == "Conv":
            w = consts.get(node.input[1])
            if w is None:
                raise InputError(f"node {node.name!r} (Conv): its weight is not a constant")
            if any(d != 1 for d in a.get("dilations", [1, 1])):
                raise InputError(f"node {node.name!r} (Conv): dilation {a['dilations']} is not supported")
            bias = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            out = b.conv(name, src(node), int(w.shape[0]), tuple(int(k) for k in w.shape[2:]),
                         tuple(a.get("strides", [1, 1])), _sym_pads(a.get("pads"), node),
                         int(a.get("group", 1)), bias is not None)
            weights[out] = w.astype(np.float32)
            biases[out] = (bias if bias is not None else np.zeros(w.shape[0])).astype(np.float32)
            producer_of[out] = "conv"
        elif op in ("Gemm", "MatMul"):
            w = consts.get(node.input[1])
            if w is None:
                raise InputError(f"node {node.name!r} ({op}): its second input must be a constant weight")
            if op == "Gemm":
                if a.get("transA", 0):
                    raise InputError(f"node {node.name!r} (Gemm): transA is not supported")
                w = w if a.get("transB", 0) else w.T
                w = w * a.get("alpha", 1.0)
                c = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
                bias = None if c is None else np.broadcast_to(c * a.get("beta", 1.0), (w.shape[0],))
            else:
                w, bias = w.T, None
            out = b.fc(name, src(node), int(w.shape[0]), bias is not None)
            weights[out] = np.ascontiguousarray(w, dtype=np.float32)
            biases[out] = (bias if bias is not None else np.zeros(w.shape[0])).astype(np.float32)
            producer_of[out] = "fc"
        elif op in ("MaxPool", "AveragePool"):
            out = b.add_layer(name, Pool2d(
                "max" if op == "MaxPool" else "avg", tuple(a["kernel_shape"]),
                tuple(a.get("strides", a["kernel_shape"])), _sym_pads(a.get("pads"), node),
                bool(a.get("ceil_mode", 0))), [src(node)])
        elif op in ("GlobalAveragePool", "GlobalMaxPool"):
            out = b.add_layer(name, GlobalPool("avg" if op == "GlobalAveragePool" else "max"), [src(node)])
        elif op == "BatchNormalization":
            x = src(node)
            gamma, beta, mean, var = (consts.get(node.input[i]) for i in range(1, 5))
            if any(v is None for v in (gamma, beta, mean, var)):
                raise InputError(f"node {node.name!r} (BatchNormalization): its parameters must be constants")
            if producer_of.get(x) == "conv" and consumers.get(node.input[0], 0) == 1:
                weights[x], biases[x] = fold_batchnorm(weights[x], biases[x], gamma, beta, mean, var,
                                                       float(a.get("epsilon", 1e-5)))
                out = x                                    # folded: the conv now produces it
            else:
                out = b.batchnorm(name, x)
        elif op in ("Add", "Sum"):
            const = [i for i, t in enumerate(node.input) if t in consts]
            if const and len(node.input) == 2:
                x = src(node, 1 - const[0])
                c = consts[node.input[const[0]]]
                if producer_of.get(x) in ("fc", "conv") and c.size == biases[x].size \
                        and consumers.get(node.input[1 - const[0]], 0) == 1:
                    biases[x] = biases[x] + c.reshape(-1).astype(np.float32)
                    out = x
                else:
                    skipped.append(f"{node.name or node.output[0]} (Add of a constant)")
                    warn_skip(f"skipped node {node.name!r} (Add of a constant): no weights, no MACs")
                    out = x
            else:
                out = b.add(name, [src(node, i) for i in range(len(node.input))])
        elif op == "Concat":
            if int(a.get("axis", 1)) != 1:
                raise InputError(f"node {node.name!r} (Concat): only channel concatenation (axis 1) "
                                 f"is supported, got axis {a.get('axis')}")
            out = b.concat(name, [src(node, i) for i in range(len(node.input))])
        elif op in ("Flatten", "Reshape"):
            x = src(node)
            shape = b.shape(x)
            if op == "Reshape":
                target = consts.get(node.input[1])
                flat = target is not None and len(target) == 2 and \
                    (int(target[1]) in (-1, int(np.prod(shape))))
                if not flat:
                    raise InputError(f"node {node.name!r} (Reshape): only a reshape to (batch, "
                                     f"features) is supported, got target {target}")
            elif int(a.get("axis", 1)) != 1:
                raise InputError(f"node {node.name!r} (Flatten): only axis 1 is supported")
            out = b.flatten(name, x) if len(shape) > 1 else x
        elif op in PASS_THROUGH:
            out = src(node)
        else:
            x = src(node)
            vi = {v.name: v for v in list(graph.value_info) + list(graph.output)}.get(node.output[0])
            out_dims = None if vi is None else [d.dim_value for d in vi.type.tensor_type.shape.dim][1:]
            skip_unsupported(op, node.name or node.output[0], any(t in consts for t in node.input),
                             b.shape(x), out_dims, skipped)
            out = x
        for t in node.output[:1]:
            tensor[t] = out
    net = b.build(description=f"imported from {path.name}", source=str(path))
    if not net.weighted_layers:
        raise InputError(f"{path}: the model has no convolution or fully connected layer")
    return ImportedModel(net, weights, biases, tuple(skipped))
