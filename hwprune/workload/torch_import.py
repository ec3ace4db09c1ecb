"""PyTorch in and out (``pip install 'hwprune[torch]'``, the CPU build is enough).

* :func:`from_torch` traces an ``nn.Module`` with ``torch.fx`` on an example input and
  returns the layers in execution order as a hwprune workload, with the weights
  (batch norms folded into the conv or linear layer before them when nothing else
  reads that layer). Layer names are the modules' qualified names (``layer1.0.conv1``)
  or, for functions such as ``x + y``, the fx node names.
* :func:`apply_masks` puts hwprune masks back with
  ``torch.nn.utils.prune.custom_from_mask``. A unit whose weights are all pruned also
  gets its bias and the following batch norm's scale and shift masked, so that it
  outputs exactly zero (hwprune's convention for a removed neuron or filter).
* :func:`compact` returns a copy of the module in which node-pruned layers are
  physically smaller: fewer output channels or features, together with the layers
  coupled to them (residual adds, depthwise convolutions; ``torch_groups``), their
  batch norms and every reader sliced to match. Its outputs equal the masked model's.
  :func:`coupled_groups` lists the layers that must keep the same units. The coupling
  is Torch-Pruning's DepGraph (``torch-pruning``, installed by the ``torch`` extra).

What :func:`from_torch` reads (docs/importing.md has the full table):

* modules: Conv1d/Conv2d (groups, dilation, ``padding='same'``), Linear (on a vector:
  ``Linear``; on more axes: ``TokenLinear`` over the last), BatchNorm1d/2d, LayerNorm,
  GroupNorm, Max/AvgPool2d, adaptive pooling to any size, Flatten/Unflatten, Upsample,
  ChannelShuffle, activations, Dropout, Identity; MultiheadAttention,
  TransformerEncoderLayer and TransformerEncoder (``batch_first=True``) expanded into
  projections, per-head views, matmuls and softmax;
* functions and methods: ``+ - * /`` (residual :class:`~.ops.Add` or broadcasting
  :class:`~.ops.Elementwise`), ``@``/matmul/bmm, ``F.scaled_dot_product_attention``,
  ``torch.cat``, flatten/view/reshape/(un)squeeze, permute/transpose, indexing, chunk/
  split/unbind, mean/sum/amax, expand, the functional forms of the pooling,
  normalization, interpolation and linear layers, and ``x.shape``/``size()``/
  ``torch._assert`` (shape arithmetic, no layer);
* parameters read directly (ViT's class token and position embedding, ConvNeXt's layer
  scale) as learned :class:`~.ops.Constant` layers.

The ReLU family, dropout, stochastic depth, ``contiguous`` and casts pass through with
no layer; the other activations (GELU, SiLU, Hardswish, Sigmoid, Softmax, ...) are
layers. Dimension 0 of the example is the batch: a tensor whose batch a permute moved
is followed through reshapes, indexing, unbind and chunk, and any other operation on it,
or one that merges the batch into another dimension, is an error. Every layer's shape
is checked against torch's. A module or function that is not known is an error naming
it, its node and its shapes when it has parameters, changes its input's shape or reads
more than one tensor; otherwise it is skipped with a warning.
"""

from __future__ import annotations

import math
import operator
from typing import Mapping

import numpy as np

from ..errors import InputError, ShapeError
from .builder import NetworkBuilder
from .imported import ImportedModel, fold_batchnorm, warn_skip
from .ops import (
    Activation,
    AdaptivePool2d,
    ChannelShuffle,
    Concat,
    Constant,
    Elementwise,
    GlobalPool,
    GroupNorm,
    LayerNorm,
    Pool2d,
    Reduce,
    Upsample,
)


def _weight_and_bias(mod, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """A conv or linear module's weight and bias as float32 numpy arrays (zeros for a
    module without bias, ``n_out`` of them)."""
    weight = mod.weight.detach().cpu().numpy().astype(np.float32)
    bias = (mod.bias.detach().cpu().numpy() if mod.bias is not None
            else np.zeros(n_out)).astype(np.float32)
    return weight, bias


def _torch():
    try:
        import torch
        import torch.fx  # noqa: F401
    except ImportError:
        raise InputError("importing PyTorch modules needs torch: pip install 'hwprune[torch]'") from None
    return torch


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _check_args(torch, module, example) -> None:
    """The module and example input a caller passed, as the CLI would word it."""
    if not isinstance(module, torch.nn.Module):
        raise InputError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if not isinstance(example, torch.Tensor):
        raise InputError("example_input must be a torch.Tensor with a batch dimension, got "
                         f"{'None' if example is None else type(example).__name__}")
    if example.dim() < 2 or example.numel() == 0:
        raise InputError("example_input must be a torch.Tensor with a batch dimension, got a tensor "
                         f"of shape {tuple(example.shape)}; accepted: (batch, ...) with no zero "
                         "dimension, e.g. torch.randn(1, 3, 224, 224)")


ROOT = "_hwprune_root"
"""Attribute under which :func:`_trace` wraps a root module that torch.fx would not
trace into (``nn.TransformerEncoderLayer``, ``nn.Linear``, ...: a *leaf*)."""


class _Root:
    """Factory of the wrapper module (built lazily: torch is optional)."""

    @staticmethod
    def wrap(torch, module):
        class Wrapped(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                setattr(self, ROOT, inner)

            def forward(self, x):
                return getattr(self, ROOT)(x)

        return Wrapped(module)


def _trace(module, example):
    """``module`` traced by torch.fx in eval mode (the inference graph: dropout and
    stochastic depth off), with every node's output shape propagated from ``example``.
    A root module that fx treats as a leaf (a ``torch.nn`` module) is traced as the one
    call of a wrapper (:data:`ROOT`)."""
    import contextlib
    import io

    torch = _torch()
    from torch.fx.passes.shape_prop import ShapeProp

    class Prop(ShapeProp):               # remembers the node it runs, for the error
        current = None

        def run_node(self, n):
            self.current = n
            return super().run_node(n)

    _check_args(torch, module, example)
    module_was_training = module.training
    module.eval()
    try:
        root = _Root.wrap(torch, module) if torch.fx.Tracer().is_leaf_module(module, "") else module
        try:
            gm = torch.fx.symbolic_trace(root)
        except Exception as exc:
            raise InputError(f"torch.fx cannot trace {type(module).__name__}: {_one_line(exc)}") from None
        gm.eval()
        try:
            # Shapes only: fake tensors (no arithmetic) first, several times faster on
            # a 224x224 model; real tensors where an operation has no fake kernel, and
            # for the error message of an input the module does not accept.
            # ShapeProp prints a traceback before it re-raises: keep it off the user's stderr.
            from torch._subclasses.fake_tensor import FakeTensorMode

            with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
                Prop(gm, fake_mode=FakeTensorMode(allow_non_fake_inputs=True)).propagate(example)
            return gm
        except Exception:
            pass
        prop = Prop(gm)
        try:
            with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
                prop.propagate(example)
        except Exception as exc:      # a shape or dtype the module does not accept
            cause = exc.__cause__ or exc
            node = prop.current
            where = "" if node is None else f" at {node.target if node.op == 'call_module' else node.name}"
            raise InputError(f"cannot run {type(module).__name__} on an example input of shape "
                             f"{tuple(example.shape)} ({example.dtype}){where}: {_one_line(cause)}") from None
    finally:
        if module_was_training:
            module.train()
    return gm


def _meta_shape(meta) -> tuple[int, ...] | None:
    return tuple(int(d) for d in meta.shape) if hasattr(meta, "shape") else None


def _full_shape(node) -> tuple[int, ...] | None:
    """A node's output shape, batch dimension included (None: not one tensor)."""
    return _meta_shape(node.meta.get("tensor_meta"))


def _shape(node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta")
    return None if meta is None or not hasattr(meta, "shape") else tuple(int(d) for d in meta.shape[1:])


PASS_MODULES = ("ReLU", "ReLU6", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "SiLU", "Hardswish",
                "Hardsigmoid", "ELU", "SELU", "Softmax", "LogSoftmax", "Dropout", "Identity", "Mish")
PASS_FUNCTIONS = ("relu", "relu6", "leaky_relu", "sigmoid", "tanh", "gelu", "silu", "hardswish",
                  "hardsigmoid", "elu", "selu", "softmax", "log_softmax", "dropout", "mish")

FREE = {"relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "hardtanh", "hardtanh_", "dropout",
        "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout", "identity",
        "contiguous", "clone", "detach", "float", "to", "type_as", "clamp", "clamp_min",
        "stochastic_depth"}
"""Operations :func:`from_torch` passes through without a layer (the output is read as
the input): the ReLU family, which a device applies in the producing layer's output
stage at no cost of its own, and operations that do nothing at inference (dropout,
stochastic depth, identity, ``contiguous``, dtype casts)."""

RECORDED = {"gelu": "gelu", "silu": "silu", "mish": "mish", "hardswish": "hardswish",
            "hardsigmoid": "hardsigmoid", "sigmoid": "sigmoid", "tanh": "tanh", "elu": "elu",
            "selu": "selu", "celu": "celu", "softplus": "softplus", "softsign": "softsign",
            "softmax": "softmax", "log_softmax": "log_softmax", "logsoftmax": "log_softmax",
            "swish": "silu"}
"""Element-wise functions :func:`from_torch` records as an :class:`~.ops.Activation`
layer (lower-case torch name -> the operator's ``fn``): a pass over the tensor."""


def _kind(gm, node) -> str:
    """What a traced node is to the back-into-torch functions (apply_masks, compact):
    conv, fc, bn, pool, gpool, flatten, add, cat, pass, scalar, other or the fx op."""
    torch = _torch()
    if node.op == "call_module":
        mod = gm.get_submodule(node.target)
        name = type(mod).__name__
        if name in PASS_MODULES:
            return "pass"
        return {torch.nn.Conv2d: "conv", torch.nn.Linear: "fc", torch.nn.BatchNorm2d: "bn",
                torch.nn.BatchNorm1d: "bn", torch.nn.MaxPool2d: "pool", torch.nn.AvgPool2d: "pool",
                torch.nn.AdaptiveAvgPool2d: "gpool", torch.nn.AdaptiveMaxPool2d: "gpool",
                torch.nn.Flatten: "flatten"}.get(type(mod), "other")
    if node.op == "call_function":
        if node.target in (operator.add, torch.add):
            return "add"
        if node.target is torch.cat:
            return "cat"
        if node.target is torch.flatten:
            return "flatten"
        if getattr(node.target, "__name__", "") in PASS_FUNCTIONS:
            return "pass"
        return "other"
    if node.op == "call_method":
        if node.target in ("flatten", "view", "reshape"):
            return "flatten"
        if node.target in PASS_FUNCTIONS or node.target in ("contiguous", "relu_"):
            return "pass"
        if node.target == "size":
            return "scalar"
        return "other"
    return node.op


class _Const:
    """A ``get_attr`` value: a parameter or buffer the graph reads directly."""

    def __init__(self, node, tensor, learned: bool):
        self.node, self.tensor, self.learned = node, tensor, learned

    @property
    def target(self) -> str:
        return self.node.target


def _arg(node, i: int, name: str, default=None):
    """Argument ``i`` (positional) or ``name`` (keyword) of an fx node."""
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(name, default)


def _ints(value) -> tuple[int, ...]:
    return (int(value),) if isinstance(value, int) else tuple(int(v) for v in value)


def _method_dims(node, start: int = 1) -> tuple:
    """``x.permute(0, 2, 1)`` or ``x.permute((0, 2, 1))``: the dims after ``self``."""
    rest = node.args[start:] or (node.kwargs.get("dims") or node.kwargs.get("size") or (),)
    return tuple(rest[0]) if len(rest) == 1 and isinstance(rest[0], (tuple, list)) else tuple(rest)


class _Import:
    """One :func:`from_torch` run: walks the traced graph node by node, adding layers."""

    def __init__(self, torch, gm, module, example, name: str | None, fold: bool):
        self.torch, self.gm, self.module, self.fold = torch, gm, module, fold
        self.b = NetworkBuilder(name or type(module).__name__, tuple(int(d) for d in example.shape[1:]))
        self.value: dict = {}              # fx node -> layer name, _Const, tuple of values
        self.producer: dict[str, str] = {}
        self.weights: dict[str, np.ndarray] = {}
        self.biases: dict[str, np.ndarray] = {}
        self.skipped: list[str] = []
        self.consts: dict[tuple, str] = {}
        self.params = {n for n, _ in gm.named_parameters()}
        self.claimed: set[str] = set()     # parameters already counted by some layer
        self.bpos: dict[str, int] = {}     # layer -> torch position of its batch axis, where not 0
        self.node = None

    # -- naming and errors ---------------------------------------------------------

    def label(self, node) -> str:
        if node.op == "call_module":
            if node.target == ROOT:
                return type(self.module).__name__.lower()
            return node.target.removeprefix(ROOT + ".")
        return node.name

    def unique(self, name: str) -> str:
        if name not in self.b._shapes:
            return name
        i = 2
        while f"{name}_{i}" in self.b._shapes:
            i += 1
        return f"{name}_{i}"

    def what(self, node) -> str:
        if node.op == "call_module":
            return type(self.gm.get_submodule(node.target)).__name__
        if node.op == "call_method":
            return f"Tensor.{node.target}"
        return getattr(node.target, "__name__", str(node.target))

    def shapes_text(self, node) -> str:
        ins = []
        for a in node.all_input_nodes:
            full = _full_shape(a)
            ins.append(str(full[1:]) if full is not None and a.op != "get_attr" else
                       (f"{a.target} {full}" if full is not None else a.name))
        return f"inputs {', '.join(ins) or 'none'} -> output {_shape(node)} (batch dimension left out)"

    def fail(self, node, why: str) -> InputError:
        return InputError(f"unsupported operation {self.what(node)} at {self.label(node)!r} "
                          f"(node {node.name}): {why}; {self.shapes_text(node)}")

    # -- reading values ------------------------------------------------------------

    def tensor(self, node, arg, rank: int | None = None, moved: bool = False) -> str:
        """The layer name holding ``arg`` (an fx node); a constant becomes a
        :class:`~.ops.Constant` layer, its batch-like leading 1 dropped when its rank is
        the full rank ``rank`` of the tensor it meets. A tensor whose batch axis an
        earlier permute moved away from dimension 0 is read only where ``moved``
        (permute, reshape, indexing, unbind, chunk)."""
        torch = self.torch
        if not isinstance(arg, torch.fx.Node) or arg not in self.value:
            raise self.fail(node, f"it reads {arg!r}, which hwprune did not import")
        v = self.value[arg]
        if isinstance(v, _Const):
            return self.constant(node, v, rank)
        if not isinstance(v, str):
            raise self.fail(node, f"it reads {arg.name}, which is not one tensor")
        if not moved and self.bpos.get(v, 0):
            raise self.fail(node, f"its input {arg.name} has the batch at dimension {self.bpos[v]}; hwprune "
                                  "reads such a tensor only in permute, transpose, reshape, indexing, unbind "
                                  "and chunk/split")
        return v

    def constant(self, node, c: _Const, rank: int | None) -> str:
        shape = tuple(int(d) for d in c.tensor.shape)
        full = _full_shape(node)
        rank = len(full) if rank is None and full is not None else rank
        if rank is not None and len(shape) == rank and shape:
            if shape[0] != 1:
                raise self.fail(node, f"it reads the stored tensor {c.target} of shape {shape}, whose first "
                                      "dimension lines up with the batch but is not 1")
            shape = shape[1:]
        key = (c.target, shape)
        if key not in self.consts:
            learned = c.learned and c.target not in self.claimed
            self.claimed.add(c.target)
            self.consts[key] = self.b.add_layer(self.unique(c.target), Constant(shape, learned), [])
        return self.consts[key]

    def claim(self, node, arg) -> _Const | None:
        """A parameter read as a function's weight (``F.layer_norm``'s, ``F.linear``'s)."""
        if arg is None:
            return None
        v = self.value.get(arg) if isinstance(arg, self.torch.fx.Node) else None
        if not isinstance(v, _Const):
            raise self.fail(node, "its weight is a computed tensor, not a stored parameter")
        self.claimed.add(v.target)
        return v

    def operands(self, node, args) -> list[str]:
        """Tensor operands among ``args`` (numbers left out), constants included."""
        full = _full_shape(node)
        rank = None if full is None else len(full)
        return [self.tensor(node, a, rank) for a in args
                if isinstance(a, self.torch.fx.Node) and "tensor_meta" in a.meta]

    def dim(self, node, d, rank: int, batch: int = 0) -> int:
        """A torch dimension (batch included, may be negative) as an axis of hwprune's
        per-sample shape, the batch at dimension ``batch``; the batch dimension itself
        is an error."""
        d = int(d)
        d = d + rank if d < 0 else d
        if d == batch:
            raise self.fail(node, f"it acts on dimension {d}, which holds the batch")
        if not 0 <= d < rank:
            raise self.fail(node, f"dimension {d} is out of range")
        return d - (d > batch)

    def moved(self, out: str, batch: int) -> str:
        if batch:
            self.bpos[out] = batch
        return out

    def in_full(self, node, arg=None):
        arg = node.args[0] if arg is None else arg
        full = _full_shape(arg)
        if full is None:
            raise self.fail(node, f"it reads {getattr(arg, 'name', arg)}, which is not one tensor")
        return full

    # -- adding layers -------------------------------------------------------------

    def add(self, node, op, inputs, name: str | None = None) -> str:
        out = self.b.add_layer(self.unique(name or self.label(node)), op, inputs)
        return out

    def check(self, node, out) -> None:
        """hwprune's inferred shape must be torch's: a difference is an error, never a
        silently different count."""
        if isinstance(out, str):
            full, b = _full_shape(node), self.bpos.get(out, 0)
            want = None if full is None else full[:b] + full[b + 1:]
            have = self.b.shape(out)
            if want is not None and tuple(have) != tuple(want):
                raise InputError(f"{self.what(node)} at {self.label(node)!r} (node {node.name}): hwprune "
                                 f"infers shape {tuple(have)} where torch has {want}; "
                                 f"{self.shapes_text(node)}")

    # -- the walk ------------------------------------------------------------------

    def run(self) -> ImportedModel:
        for node in self.gm.graph.nodes:
            self.node = node
            if node.op == "placeholder":
                self.value[node] = self.b.input
                continue
            if node.op == "output":
                continue
            if node.op == "get_attr":
                tensor = getattr_path(self.gm, node.target)
                if isinstance(tensor, self.torch.Tensor):
                    self.value[node] = _Const(node, tensor, node.target in self.params)
                continue
            if "tensor_meta" not in node.meta:
                continue                     # shape arithmetic, asserts: no tensor
            try:
                out = self.visit(node)
            except ShapeError as exc:
                raise self.fail(node, str(exc)) from None
            if out is not None:
                self.check(node, out)
                self.value[node] = out
        net = self.b.build(description=f"imported from torch ({type(self.module).__name__})",
                           source="torch.fx")
        return ImportedModel(net, self.weights, self.biases, tuple(self.skipped))

    def visit(self, node):
        if node.op == "call_module":
            mod = self.gm.get_submodule(node.target)
            return self.module_node(node, mod)
        name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
        return self.function_node(node, name, node.op == "call_method")

    # -- modules -------------------------------------------------------------------

    def module_node(self, node, mod):
        nn = self.torch.nn
        t = type(mod)
        label = self.label(node)
        if t in (nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerEncoder):
            return self.composite(node, mod, label)
        x_arg = node.args[0] if node.args else None
        if t is nn.Conv2d:
            return self.conv(node, mod, label, self.tensor(node, x_arg))
        if t is nn.Conv1d:
            return self.conv1d(node, mod, label, self.tensor(node, x_arg))
        if t is nn.Linear:
            return self.linear(label, self.tensor(node, x_arg), mod.weight, mod.bias)
        if t in (nn.BatchNorm1d, nn.BatchNorm2d):
            return self.batchnorm(node, mod, label, x_arg)
        if t in (nn.LayerNorm, nn.GroupNorm):
            x = self.tensor(node, x_arg)
            if t is nn.LayerNorm:
                op = LayerNorm(tuple(mod.normalized_shape), mod.elementwise_affine,
                               getattr(mod, "bias", None) is not None)
            else:
                op = GroupNorm(mod.num_groups, mod.affine)
            return self.add(node, op, [x], label)
        if t in (nn.MaxPool2d, nn.AvgPool2d):
            x = self.tensor(node, x_arg)
            if getattr(mod, "dilation", 1) not in (1, (1, 1)):
                raise self.fail(node, "pooling with dilation is not supported")
            return self.add(node, Pool2d("max" if t is nn.MaxPool2d else "avg", mod.kernel_size,
                                         mod.stride or mod.kernel_size, mod.padding, bool(mod.ceil_mode)),
                            [x], label)
        if t in (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d):
            return self.adaptive(node, label, self.tensor(node, x_arg),
                                 "avg" if t is nn.AdaptiveAvgPool2d else "max", mod.output_size)
        if t in (nn.Flatten, nn.Unflatten):
            return self.reshape(node, label, x_arg)
        if t is nn.Upsample:
            return self.add(node, Upsample(_shape(node)[1:], mod.mode), [self.tensor(node, x_arg)], label)
        if t is nn.ChannelShuffle:
            return self.add(node, ChannelShuffle(mod.groups), [self.tensor(node, x_arg)], label)
        fn = t.__name__.lower()
        if fn in FREE or t.__name__ in ("ReLU", "ReLU6", "LeakyReLU", "Hardtanh", "Identity", "Dropout",
                                        "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout"):
            return self.tensor(node, x_arg)
        if fn in RECORDED and not any(True for _ in mod.parameters()):
            return self.add(node, Activation(RECORDED[fn]), [self.tensor(node, x_arg)], label)
        return self.unknown(node, any(True for _ in mod.parameters()))

    def conv(self, node, mod, label: str, x: str) -> str:
        pad, pad_end = self.conv_padding(node, mod)
        out = self.b.conv(self.unique(label), x, mod.out_channels, mod.kernel_size, mod.stride, pad,
                          mod.groups, mod.bias is not None, mod.dilation, pad_end)
        self.weights[out], self.biases[out] = _weight_and_bias(mod, mod.out_channels)
        self.producer[out] = "conv"
        return out

    def conv1d(self, node, mod, label: str, x: str) -> str:
        pad, pad_end = self.conv_padding(node, mod)
        name = self.unique(label)
        out = self.b.conv1d(name, x, mod.out_channels, mod.kernel_size[0], mod.stride[0], pad[0],
                            mod.groups, mod.bias is not None, mod.dilation[0],
                            None if pad_end is None else pad_end[0])
        w, b = _weight_and_bias(mod, mod.out_channels)
        self.weights[name], self.biases[name] = w[:, :, None, :], b       # (M, C/g, 1, k)
        return out

    def conv_padding(self, node, mod):
        """(padding at the start, at the end or None) of a conv module, per axis."""
        if mod.padding_mode != "zeros":
            pass                            # reflect/replicate/circular: the same sizes and MACs
        if mod.padding == "valid":
            return (0,) * len(mod.kernel_size), None
        if mod.padding == "same":
            total = [d * (k - 1) for k, d in zip(mod.kernel_size, mod.dilation)]
            start = tuple(t // 2 for t in total)
            end = tuple(t - t // 2 for t in total)
            return start, (None if end == start else end)
        return tuple(mod.padding), None

    def linear(self, label: str, x: str, weight, bias) -> str:
        """``nn.Linear``/``F.linear``: a :class:`~.ops.Linear` on a vector, a
        :class:`~.ops.TokenLinear` on the last axis of anything with more axes."""
        out_f = int(weight.shape[0])
        name = self.unique(label)
        if len(self.b.shape(x)) == 1:
            out = self.b.fc(name, x, out_f, bias is not None)
            self.producer[out] = "fc"
        else:
            out = self.b.token_fc(name, x, out_f, bias is not None)
        self.weights[out] = weight.detach().cpu().numpy().astype(np.float32)
        self.biases[out] = (bias.detach().cpu().numpy() if bias is not None
                            else np.zeros(out_f)).astype(np.float32)
        return out

    def batchnorm(self, node, mod, label: str, x_arg) -> str:
        x = self.tensor(node, x_arg)
        if self.fold and self.producer.get(x) in ("conv", "fc") and len(x_arg.users) == 1:
            g = mod.weight.detach().numpy() if mod.affine else np.ones(mod.num_features)
            be = mod.bias.detach().numpy() if mod.affine else np.zeros(mod.num_features)
            self.weights[x], self.biases[x] = fold_batchnorm(
                self.weights[x], self.biases[x], g, be, mod.running_mean.numpy(), mod.running_var.numpy(),
                mod.eps)
            return x
        return self.b.batchnorm(self.unique(label), x, mod.affine)

    def adaptive(self, node, label: str, x: str, mode: str, size) -> str:
        size = (size, size) if size is None or isinstance(size, int) else tuple(size)
        if size == (1, 1):
            return self.add(node, GlobalPool(mode), [x], label)
        return self.add(node, AdaptivePool2d(mode, size), [x], label)

    def unknown(self, node, has_weights: bool):
        """hwprune's rule for an operation it does not know: an error when it has
        weights or changes its input's shape; otherwise skipped with a warning."""
        label, what = self.label(node), self.what(node)
        if has_weights:
            raise self.fail(node, "it has weights, so it cannot be skipped")
        first = node.args[0] if node.args else None
        if not isinstance(first, self.torch.fx.Node) or first not in self.value:
            raise self.fail(node, "it reads something hwprune did not import")
        x = self.tensor(node, first)
        others = [a for a in node.all_input_nodes[1:] if "tensor_meta" in a.meta]
        if _shape(node) != tuple(self.b.shape(x)) or others:
            raise self.fail(node, "it is not one hwprune knows, and it changes its input's shape or reads "
                                  "more than one tensor, so it cannot be skipped")
        self.skipped.append(f"{label} ({what})")
        warn_skip(f"skipped unsupported operation {what} at {label!r}: no weights, no MACs, shape unchanged")
        return x

    # -- functions and tensor methods ----------------------------------------------

    def function_node(self, node, name: str, method: bool):
        torch, F = self.torch, self.torch.nn.functional
        target = node.target
        x_arg = node.args[0] if node.args else None
        label = self.label(node)
        base = name.rstrip("_") if method else name
        if not method and target is operator.getitem:
            return self.getitem(node)
        arith = {operator.add: "add", operator.iadd: "add", torch.add: "add", operator.sub: "sub",
                 operator.isub: "sub", torch.sub: "sub", operator.mul: "mul", operator.imul: "mul",
                 torch.mul: "mul", operator.truediv: "div", operator.itruediv: "div", torch.div: "div",
                 operator.pow: "pow", torch.pow: "pow", torch.maximum: "max", torch.minimum: "min"}
        if method and base in ("add", "sub", "mul", "div", "pow"):
            return self.arith(node, base)
        if not method and target in arith:
            return self.arith(node, arith[target])
        if not method and target in (operator.matmul, torch.matmul, torch.bmm) or \
                method and base in ("matmul", "bmm"):
            a, b = self.operands(node, node.args[:2])
            return self.add(node, _ops().MatMul(), [a, b], label)
        if not method and target is F.scaled_dot_product_attention:
            return self.sdpa(node, label)
        if not method and target in (torch.cat, torch.concat):
            return self.cat(node)
        if base in ("flatten", "view", "reshape", "unflatten", "squeeze", "unsqueeze", "view_as",
                    "reshape_as"):
            return self.reshape(node, label, x_arg)
        if base in ("permute", "transpose", "t", "swapaxes"):
            return self.permute(node, label, method)
        if base in ("chunk", "split", "unbind", "tensor_split"):
            return self.split(node, base, method)
        if base in ("mean", "sum", "amax", "amin"):
            return self.reduce(node, label, base)
        if base == "expand":
            return self.expand(node, label)
        if not method and target in (F.adaptive_avg_pool2d, F.adaptive_max_pool2d):
            mode = "avg" if target is F.adaptive_avg_pool2d else "max"
            return self.adaptive(node, label, self.tensor(node, x_arg), mode, _arg(node, 1, "output_size"))
        if not method and target in (F.max_pool2d, F.avg_pool2d):
            return self.pool(node, label, "max" if target is F.max_pool2d else "avg")
        if not method and target is F.interpolate or base == "upsample":
            mode = _arg(node, 3, "mode", "nearest")
            return self.add(node, Upsample(_shape(node)[1:], mode), [self.tensor(node, x_arg)], label)
        if not method and target is F.layer_norm:
            w, bias = self.claim(node, _arg(node, 2, "weight")), self.claim(node, _arg(node, 3, "bias"))
            op = LayerNorm(_ints(_arg(node, 1, "normalized_shape")), w is not None, bias is not None)
            return self.add(node, op, [self.tensor(node, x_arg)], label)
        if not method and target is F.group_norm:
            w = self.claim(node, _arg(node, 2, "weight"))
            self.claim(node, _arg(node, 3, "bias"))
            return self.add(node, GroupNorm(int(_arg(node, 1, "num_groups")), w is not None),
                            [self.tensor(node, x_arg)], label)
        if not method and target is F.linear:
            w, bias = self.claim(node, _arg(node, 1, "weight")), self.claim(node, _arg(node, 2, "bias"))
            x = self.tensor(node, x_arg)
            return self.linear(label, x, w.tensor, None if bias is None else bias.tensor)
        if base in ("channel_shuffle", "native_channel_shuffle"):
            return self.add(node, ChannelShuffle(int(_arg(node, 1, "groups"))), [self.tensor(node, x_arg)],
                            label)
        if base in FREE:
            return self.tensor(node, x_arg)
        if base in RECORDED:
            return self.add(node, Activation(RECORDED[base]), [self.tensor(node, x_arg)], label)
        return self.unknown(node, False)

    def arith(self, node, fn: str) -> str:
        xs = self.operands(node, node.args[:2])
        if fn == "add" and len(xs) == 2 and self.b.shape(xs[0]) == self.b.shape(xs[1]) and not any(
                isinstance(self.value.get(a), _Const) for a in node.args[:2]):
            return self.b.add(self.unique(self.label(node)), xs)
        return self.add(node, Elementwise(fn), xs)

    def cat(self, node) -> str:
        seq = _arg(node, 0, "tensors")
        full = _full_shape(node)
        dim = self.dim(node, _arg(node, 1, "dim", 0), len(full))
        return self.add(node, Concat(dim), [self.tensor(node, a, len(full)) for a in seq])

    def reshape(self, node, label: str, x_arg) -> str:
        """view/reshape/flatten/unflatten/(un)squeeze: to (batch, features) a
        :class:`~.ops.Flatten` (as before), to the same shape nothing, else a
        :class:`~.ops.Reshape`; the batch dimension must stay dimension 0."""
        x = self.tensor(node, x_arg, moved=True)
        src, full = self.in_full(node, x_arg), _full_shape(node)
        b = self.bpos.get(x, 0)
        before = math.prod(src[:b])
        j = next((j for j in range(len(full or ())) if math.prod(full[:j]) == before and full[j] == src[b]),
                 None)
        if j is None or b == 0 and _arg(node, 1, "start_dim", 1) == 0 and \
                node.target in ("flatten", self.torch.flatten):
            raise self.fail(node, f"it merges or splits the batch dimension (dimension {b}); accepted: "
                                  "reshapes that keep the batch as a dimension of its own")
        out, shape = full[:j] + full[j + 1:], tuple(self.b.shape(x))
        if out == shape and j == b:
            return x
        if len(out) == 1 and len(shape) > 1 and j == b == 0:
            return self.b.flatten(self.unique(label), x)
        return self.moved(self.add(node, _ops().Reshape(out), [x], label), j)

    def permute(self, node, label: str, method: bool) -> str:
        """permute/transpose/swapaxes/t: a :class:`~.ops.Permute` of the per-sample
        axes; one that moves the batch dimension records where it went."""
        x = self.tensor(node, node.args[0], moved=True)
        rank = len(self.in_full(node))
        base = node.target if method else node.target.__name__
        perm = list(range(rank))
        if base in ("transpose", "swapaxes", "t"):
            a, c = (0, 1) if base == "t" else (int(_arg(node, 1, "dim0")), int(_arg(node, 2, "dim1")))
            a, c = a % rank, c % rank
            perm[a], perm[c] = perm[c], perm[a]
        else:
            perm = [int(d) % rank for d in (_method_dims(node) if method else tuple(_arg(node, 1, "dims")))]
            if sorted(perm) != list(range(rank)):
                raise self.fail(node, f"permute {tuple(perm)} is not an order of {rank} dimensions")
        b = self.bpos.get(x, 0)
        dims = tuple(p - (p > b) for p in perm if p != b)
        j = perm.index(b)
        if dims == tuple(range(rank - 1)) and j == b:
            return x
        return self.moved(self.add(node, _ops().Permute(dims), [x], label), j)

    def split(self, node, base: str, method: bool) -> tuple:
        """chunk/split/unbind/tensor_split: one :class:`~.ops.Slice` (or
        :class:`~.ops.Select` for unbind) layer per output, ``label.0``, ``label.1``, ..."""
        x = self.tensor(node, node.args[0], moved=True)
        rank = len(self.in_full(node))
        metas = node.meta["tensor_meta"]
        label = self.label(node)
        b = self.bpos.get(x, 0)
        if base == "unbind":
            d = int(_arg(node, 1, "dim", 0)) % rank
            axis = self.dim(node, d, rank, b)
            return tuple(self.moved(self.b.select(self.unique(f"{label}.{i}"), x, axis, i), b - (d < b))
                         for i in range(len(metas)))
        d = int(_arg(node, 2, "dim", 0)) % rank
        axis = self.dim(node, d, rank, b)
        sizes = [int(_meta_shape(m)[d]) for m in metas]
        outs, start = [], 0
        for i, size in enumerate(sizes):
            part = self.b.slice(self.unique(f"{label}.{i}"), x, axis, start, start + size)
            outs.append(self.moved(part, b))
            start += size
        return tuple(outs)

    def getitem(self, node):
        src, key = node.args
        v = self.value.get(src) if isinstance(src, self.torch.fx.Node) else None
        if isinstance(v, (tuple, list)):
            return v[key]              # None: an output not imported (an error where it is read)
        x = self.tensor(node, src, moved=True)
        rank = len(self.in_full(node, src))
        b = self.bpos.get(x, 0)
        key = key if isinstance(key, tuple) else (key,)
        if any(isinstance(k, self.torch.fx.Node) for k in key) or any(
                not (k is None or k is Ellipsis or isinstance(k, (int, slice))) for k in key):
            raise self.fail(node, f"indexing with {key!r} is not supported; accepted: numbers, slices, "
                                  "None and ...")
        explicit = sum(1 for k in key if k is not None and k is not Ellipsis)
        axes: list = []
        for k in key:
            if k is Ellipsis:
                axes.extend([slice(None)] * (rank - explicit))
            elif k is not None:
                axes.append(k)
        axes.extend([slice(None)] * (rank - len(axes)))
        if axes[b] != slice(None) or b and None in key:
            raise self.fail(node, f"it indexes dimension {b}, which holds the batch")
        out, axis, label, n, out_b = x, 0, self.label(node), 0, b
        for t, k in enumerate(axes):
            if t == b or k == slice(None):
                axis += t != b
                continue
            name = self.unique(label if n == 0 else f"{label}.{n}")
            n += 1
            if isinstance(k, int):
                out = self.b.select(name, out, axis, k)
                out_b -= t < b
            else:
                out = self.b.slice(name, out, axis, k.start, k.stop, k.step or 1)
                axis += 1
        if b == 0 and tuple(self.b.shape(out)) != _shape(node):     # None inserted an axis
            out = self.add(node, _ops().Reshape(_shape(node)), [out],
                           label if n == 0 else f"{label}.{n}")
        if out == x and out_b != b:
            out = self.add(node, _ops().Permute(tuple(range(rank - 1))), [out], label)
        return self.moved(out, out_b)

    def reduce(self, node, label: str, base: str) -> str:
        x = self.tensor(node, node.args[0])
        rank = len(self.in_full(node))
        dims = _arg(node, 1, "dim")
        if dims is None:
            raise self.fail(node, "a reduction over every dimension includes the batch dimension")
        axes = tuple(self.dim(node, d, rank) for d in _ints(dims))
        keep = bool(_arg(node, 2, "keepdim", False))
        mode = {"amax": "max", "amin": "min"}.get(base, base)
        shape = self.b.shape(x)
        if mode in ("mean", "max") and len(shape) == 3 and sorted(axes) == [1, 2] and keep:
            return self.add(node, GlobalPool("avg" if mode == "mean" else "max"), [x], label)
        return self.add(node, Reduce(mode, axes, keep), [x], label)

    def expand(self, node, label: str):
        full = _full_shape(node)
        v = self.value.get(node.args[0])
        x = self.tensor(node, node.args[0], len(full))
        if isinstance(v, _Const) and full[0] != 1 and self.b.shape(x) == full[1:]:
            return x                           # a stored tensor repeated over the batch
        if tuple(self.b.shape(x)) == full[1:]:
            return x
        return self.add(node, _ops().Expand(full[1:]), [x], label)

    def pool(self, node, label: str, mode: str) -> str:
        x = self.tensor(node, node.args[0])
        kernel = _arg(node, 1, "kernel_size")
        stride = _arg(node, 2, "stride") or kernel
        pad = _arg(node, 3, "padding", 0)
        if mode == "max":
            if _arg(node, 4, "dilation", 1) not in (1, (1, 1)):
                raise self.fail(node, "pooling with dilation is not supported")
            ceil = _arg(node, 5, "ceil_mode", False)
        else:
            ceil = _arg(node, 4, "ceil_mode", False)
        return self.add(node, Pool2d(mode, kernel, stride, pad, bool(ceil)), [x], label)

    def sdpa(self, node, label: str) -> str:
        """``F.scaled_dot_product_attention(q, k, v)``: ``k`` transposed, ``Q K^T``,
        softmax (scale and a causal mask folded in), ``A V``."""
        q, k, v = (self.tensor(node, _arg(node, i, n)) for i, n in enumerate(("query", "key", "value")))
        if _arg(node, 3, "attn_mask") is not None:
            raise self.fail(node, "attn_mask is not supported")
        if _arg(node, 7, "enable_gqa", False):
            raise self.fail(node, "enable_gqa is not supported")
        b = self.b
        rank = len(b.shape(k))
        if rank < 2:
            raise self.fail(node, "query, key and value need (..., sequence, features)")
        dims = list(range(rank))
        dims[-2], dims[-1] = dims[-1], dims[-2]
        kt = b.permute(self.unique(f"{label}.key_t"), k, tuple(dims))
        scores = b.matmul(self.unique(f"{label}.scores"), q, kt)
        probs = b.activation(self.unique(f"{label}.softmax"), scores, "softmax")
        return b.matmul(self.unique(label), probs, v)

    # -- torch.nn's attention modules, expanded ------------------------------------

    def composite(self, node, mod, label: str):
        nn = self.torch.nn
        prefix = "" if node.target == ROOT else label
        n0 = len(self.b._layers)
        if type(mod) is nn.MultiheadAttention:
            q, k, v = (_arg(node, i, n) for i, n in enumerate(("query", "key", "value")))
            for i, kw in ((3, "key_padding_mask"), (5, "attn_mask")):
                if _arg(node, i, kw) is not None:
                    raise self.fail(node, f"{kw} is not supported")
            xs = [self.tensor(node, a) for a in (q, k, v)]
            out = (self.attention(node, mod, prefix, *xs), None)
        else:
            for i, kw in ((1, "mask" if type(mod) is nn.TransformerEncoder else "src_mask"),
                          (2, "src_key_padding_mask")):
                if _arg(node, i, kw) is not None:
                    raise self.fail(node, f"{kw} is not supported")
            x = self.tensor(node, node.args[0])
            if type(mod) is nn.TransformerEncoderLayer:
                out = self.encoder_layer(node, mod, prefix, x)
            else:
                for i, layer in enumerate(mod.layers):
                    x = self.encoder_layer(node, layer, _sub(prefix, f"layers.{i}"), x)
                if mod.norm is not None:
                    x = self.layernorm(mod.norm, _sub(prefix, "norm"), x)
                out = x
        added = sum(lay.params for lay in self.b._layers[n0:])
        want = sum(p.numel() for p in mod.parameters())
        if added != want:
            raise self.fail(node, f"its expansion counts {added} parameters where the module has {want}")
        self.claimed.update(f"{node.target}.{n}" for n, _ in mod.named_parameters())
        return out

    def layernorm(self, mod, name: str, x: str) -> str:
        op = LayerNorm(tuple(mod.normalized_shape), mod.elementwise_affine,
                       getattr(mod, "bias", None) is not None)
        return self.b.add_layer(self.unique(name), op, [x])

    def attention(self, node, mod, prefix: str, q: str, k: str, v: str) -> str:
        """``nn.MultiheadAttention`` (batch_first) as q/k/v projections, per-head views,
        ``Q K^T``, softmax (the 1/sqrt(d) scale folded in), ``A V``, merge, out_proj."""
        if not mod.batch_first:
            raise self.fail(node, "MultiheadAttention with batch_first=False reads (sequence, batch, "
                                  "embedding), while hwprune takes dimension 0 as the batch; build it with "
                                  "batch_first=True")
        if mod.bias_k is not None or mod.add_zero_attn:
            raise self.fail(node, "add_bias_kv and add_zero_attn are not supported")
        e, h = mod.embed_dim, mod.num_heads
        d = e // h
        if mod._qkv_same_embed_dim:
            ws = mod.in_proj_weight.split(e)
        else:
            ws = (mod.q_proj_weight, mod.k_proj_weight, mod.v_proj_weight)
        bs = mod.in_proj_bias.split(e) if mod.in_proj_bias is not None else (None,) * 3
        b = self.b
        heads = []
        for tag, x, w, bias in zip("qkv", (q, k, v), ws, bs):
            y = self.linear(_sub(prefix, f"{tag}_proj"), x, w, bias)
            length = b.shape(y)[0]
            if len(b.shape(y)) != 2:
                raise self.fail(node, f"attention needs (sequence, embedding) per sample, got {b.shape(y)}")
            y = b.reshape(self.unique(_sub(prefix, f"{tag}_heads")), y, (length, h, d))
            y = b.permute(self.unique(_sub(prefix, f"{tag}_perm")), y, (1, 2, 0) if tag == "k" else (1, 0, 2))
            heads.append(y)
        scores = b.matmul(self.unique(_sub(prefix, "scores")), heads[0], heads[1])
        probs = b.activation(self.unique(_sub(prefix, "softmax")), scores, "softmax")
        ctx = b.matmul(self.unique(_sub(prefix, "context")), probs, heads[2])
        ctx = b.permute(self.unique(_sub(prefix, "merge_perm")), ctx, (1, 0, 2))
        ctx = b.reshape(self.unique(_sub(prefix, "merge")), ctx, (b.shape(ctx)[0], e))
        return self.linear(_sub(prefix, "out_proj"), ctx, mod.out_proj.weight, mod.out_proj.bias)

    def encoder_layer(self, node, mod, prefix: str, x: str) -> str:
        """``nn.TransformerEncoderLayer`` (batch_first; pre- or post-norm)."""
        if not mod.self_attn.batch_first:
            raise self.fail(node, "TransformerEncoderLayer with batch_first=False reads (sequence, batch, "
                                  "embedding), while hwprune takes dimension 0 as the batch; build it with "
                                  "batch_first=True")
        act = mod.activation
        fn = (type(act).__name__ if isinstance(act, self.torch.nn.Module) else act.__name__).lower()
        if fn not in FREE and fn not in RECORDED:
            raise self.fail(node, f"activation {fn} is not supported")
        b = self.b

        def attn(y):
            return self.attention(node, mod.self_attn, _sub(prefix, "self_attn"), y, y, y)

        def feed_forward(y):
            y = self.linear(_sub(prefix, "linear1"), y, mod.linear1.weight, mod.linear1.bias)
            if fn in RECORDED:
                y = b.activation(self.unique(_sub(prefix, "activation")), y, RECORDED[fn])
            return self.linear(_sub(prefix, "linear2"), y, mod.linear2.weight, mod.linear2.bias)

        def residual(i, a, c):
            return b.add(self.unique(_sub(prefix, f"residual{i}")), [a, c])

        if mod.norm_first:
            x = residual(1, x, attn(self.layernorm(mod.norm1, _sub(prefix, "norm1"), x)))
            return residual(2, x, feed_forward(self.layernorm(mod.norm2, _sub(prefix, "norm2"), x)))
        x = self.layernorm(mod.norm1, _sub(prefix, "norm1"), residual(1, x, attn(x)))
        return self.layernorm(mod.norm2, _sub(prefix, "norm2"), residual(2, x, feed_forward(x)))


def _sub(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _ops():
    from . import ops

    return ops


def getattr_path(obj, target: str):
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def from_torch(module, example_input, name: str | None = None, fold_batchnorm: bool = True) -> ImportedModel:
    """Import ``module`` traced on ``example_input`` (a tensor with a batch dimension).

    ``fold_batchnorm`` (default) folds a batch norm into the conv or linear layer before
    it when nothing else reads that layer (the deployed network; its scale and shift
    are then not counted as parameters); ``False`` keeps every batch norm as a layer, so
    that the parameter count is ``sum(p.numel() for p in module.parameters())``.
    """
    torch = _torch()
    gm = _trace(module, example_input)
    return _Import(torch, gm, module, example_input, name, fold_batchnorm).run()


# -- back into torch ------------------------------------------------------------------

def _downstream(gm, node):
    """(batch norms right after ``node``, the next conv/linear node, positions per channel
    if a flatten lies between); raises if the path branches or merges."""
    bns, positions, cur = [], 1, node
    while True:
        users = list(cur.users)
        if len(users) != 1:
            raise InputError(f"{node.target}: its output feeds {len(users)} operations; only a "
                             "layer whose output runs straight into one conv or linear layer can be "
                             "compacted")
        nxt = users[0]
        kind = _kind(gm, nxt)
        if kind == "bn":
            bns.append(nxt)
        elif kind in ("pass", "pool", "gpool"):
            pass
        elif kind == "flatten":
            shape = _shape(cur)
            positions = int(np.prod(shape[1:])) if shape and len(shape) > 1 else 1
        elif kind in ("conv", "fc"):
            return bns, nxt, positions
        elif kind == "output":
            return bns, None, positions
        else:
            raise InputError(f"{node.target}: its output reaches {nxt.name} ({kind}), which cannot be "
                             "sliced; only a layer followed by activations, pooling, batch norm and "
                             "flatten, then one conv or linear layer, can be compacted")
        cur = nxt


def apply_masks(module, masks: Mapping[str, np.ndarray], example_input) -> None:
    """Attach ``masks`` (bool arrays of each layer's weight shape, by qualified module
    name) with ``torch.nn.utils.prune.custom_from_mask``; see the module docstring."""
    torch = _torch()
    from torch.nn.utils import prune

    gm = _trace(module, example_input)
    nodes = {n.target: n for n in gm.graph.nodes if n.op == "call_module"}
    for name, mask in masks.items():
        try:
            mod = module.get_submodule(name)
        except AttributeError:
            raise InputError(f"the module has no layer {name!r}") from None
        if not hasattr(mod, "weight") or tuple(mod.weight.shape) != tuple(np.shape(mask)):
            raise InputError(f"{name}: mask shape {np.shape(mask)} does not match its weight "
                             f"{tuple(getattr(mod, 'weight', np.zeros(0)).shape)}")
        mask = np.asarray(mask, dtype=bool)
        prune.custom_from_mask(mod, "weight", torch.as_tensor(mask))
        alive = mask.reshape(mask.shape[0], -1).any(axis=1)
        if alive.all():
            continue
        unit = torch.as_tensor(alive)
        if mod.bias is not None:
            prune.custom_from_mask(mod, "bias", unit)
        if name in nodes:
            try:
                bns = _downstream(gm, nodes[name])[0]
            except InputError:
                bns = [u for u in nodes[name].users if _kind(gm, u) == "bn"]
            for bn in bns:
                bnmod = module.get_submodule(bn.target)
                # A removed unit outputs exactly zero: scale and shift masked, and the
                # running mean (which the masked scale multiplies) made harmless.
                prune.custom_from_mask(bnmod, "weight", unit)
                prune.custom_from_mask(bnmod, "bias", unit)


def _copy_unmasked(module):
    """A deep copy of ``module`` with masks attached by ``torch.nn.utils.prune`` made
    permanent (the masked weights become the plain weights)."""
    import copy

    from torch.nn.utils import prune

    torch = _torch()
    # A masked parameter is a computed (non-leaf) tensor, which deepcopy refuses: copy
    # with detached stand-ins, then put the originals back.
    saved = []
    for mod in module.modules():
        for param in ("weight", "bias"):
            if hasattr(mod, f"{param}_orig") and isinstance(mod.__dict__.get(param), torch.Tensor):
                saved.append((mod, param, mod.__dict__[param]))
                mod.__dict__[param] = mod.__dict__[param].detach()
    try:
        new = copy.deepcopy(module)
    finally:
        for mod, param, value in saved:
            mod.__dict__[param] = value
    for mod in new.modules():
        for param in ("weight", "bias"):
            if hasattr(mod, f"{param}_orig"):
                prune.remove(mod, param)
    return new


def _output_layers(gm) -> set[str]:
    """Conv/linear layers whose units reach the model's output unchanged in number:
    walking back from the output through everything but a (non-depthwise) conv or
    linear layer."""
    found, seen = set(), set()
    stack = [n for n in gm.graph.nodes if n.op == "output"]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if _kind(gm, node) in ("conv", "fc"):
            found.add(node.target)
            mod = gm.get_submodule(node.target)
            if not (getattr(mod, "groups", 1) > 1 and mod.groups == mod.in_channels == mod.out_channels):
                continue
        stack.extend(node.all_input_nodes)
    return found


def _coupling(module, example_input):
    """hwprune's fx checks, then Torch-Pruning's coupling (``torch_groups.Coupling``)."""
    from .torch_groups import Coupling

    gm = _trace(module, example_input)        # InputError for a module or input that fails
    order = [n.target for n in gm.graph.nodes if n.op == "call_module" and _kind(gm, n) in ("conv", "fc")]
    return Coupling(module, example_input, order, _output_layers(gm))


def coupled_groups(module, example_input, prunable_only: bool = False) -> list[tuple[str, ...]]:
    """The conv/linear layers of ``module`` (qualified names, execution order) grouped so
    that the layers of one group must keep the same output units: the convs feeding one
    residual add, a depthwise conv and the layer feeding it (Torch-Pruning's DepGraph;
    ``hwprune.workload.torch_groups``). Every conv/linear layer is in one group; the
    groups are in the order of their first layer. ``prunable_only`` leaves out the
    groups whose units cannot be removed (the network's output layers and the layers
    coupled with them, groups through a grouped non-depthwise convolution or a partial
    coupling); :func:`compact` names the reason for such a group."""
    graph = _coupling(module, example_input)
    return [g for i, g in enumerate(graph.groups) if not (prunable_only and i in graph.blocked)]


def compact(module, keep_units: Mapping[str, np.ndarray], example_input, round_to: int | None = None):
    """A physically smaller copy of ``module`` (masks attached by :func:`apply_masks`
    made permanent first; ``module`` itself is left alone).

    ``keep_units``: per conv/linear layer name, a bool per output unit (True = kept).
    The keep set of a coupled group (:func:`coupled_groups`) is the union of the keep
    masks given for its members; members not named follow it, so naming one layer of a
    residual stage shrinks the whole stage. The outputs equal the masked model's when
    every member's removed units output zero there (mask the whole group, as the
    node-pruning policy does). Batch norms, depthwise convolutions and every reader
    (input channels, a concat's slice, the positions after a flatten) are cut to match.
    Groups not named are left whole.

    ``round_to=k`` rounds each compacted group's unit count up to a multiple of ``k``
    (e.g. the device's SIMD width; never above the layer's units). The units added back
    are the removed ones with the largest summed L1 weight norm over the group's members
    (ties: lowest index); in a masked model they output zero, so the outputs still match.
    """
    torch = _torch()
    if round_to is not None and (isinstance(round_to, bool) or not isinstance(round_to, (int, np.integer))
                                 or round_to < 1):
        raise InputError(f"round_to must be a positive whole number of units (e.g. the device's SIMD "
                         f"width), got {round_to!r}")
    if not isinstance(keep_units, Mapping):
        raise InputError(f"keep_units must map layer names to a bool per output unit, got "
                         f"{type(keep_units).__name__}")
    _check_args(torch, module, example_input)
    from .torch_groups import shrink

    new = _copy_unmasked(module)
    shrink(_coupling(new, example_input), keep_units, round_to)
    return new
