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
  physically smaller: fewer output channels or features, the batch norm after them
  and the inputs of the next conv or linear layer sliced to match. Its outputs equal
  the masked model's.

Supported modules: Conv2d (no dilation, symmetric padding), Linear, BatchNorm1d/2d,
MaxPool2d, AvgPool2d, AdaptiveAvgPool2d/AdaptiveMaxPool2d to 1x1, Flatten, the
parameter-free activations, Dropout and Identity; functions and methods: ``+``/
``torch.add``, ``torch.cat`` on channels, ``torch.flatten``/``view``/``reshape`` to
``(batch, features)`` and functional activations. A module or function with parameters
that is not listed is an error naming it; one without, that keeps its input's shape, is
skipped with a warning.
"""

from __future__ import annotations

import operator
from typing import Mapping

import numpy as np

from ..errors import InputError
from .builder import NetworkBuilder
from .imported import ImportedModel, fold_batchnorm, skip_unsupported
from .ops import GlobalPool, Pool2d


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


def _trace(module, example):
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
    try:
        gm = torch.fx.symbolic_trace(module)
    except Exception as exc:
        raise InputError(f"torch.fx cannot trace {type(module).__name__}: {_one_line(exc)}") from None
    module_was_training = module.training
    gm.eval()
    prop = Prop(gm)
    try:
        # ShapeProp prints a traceback before it re-raises: keep it off the user's stderr.
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


def _shape(node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta")
    return None if meta is None or not hasattr(meta, "shape") else tuple(int(d) for d in meta.shape[1:])


PASS_MODULES = ("ReLU", "ReLU6", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "SiLU", "Hardswish",
                "Hardsigmoid", "ELU", "SELU", "Softmax", "LogSoftmax", "Dropout", "Identity", "Mish")
PASS_FUNCTIONS = ("relu", "relu6", "leaky_relu", "sigmoid", "tanh", "gelu", "silu", "hardswish",
                  "hardsigmoid", "elu", "selu", "softmax", "log_softmax", "dropout", "mish")


def _kind(gm, node) -> str:
    """What a traced node is to hwprune (see the module docstring)."""
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


def from_torch(module, example_input, name: str | None = None) -> ImportedModel:
    """Import ``module`` traced on ``example_input`` (a tensor with a batch dimension)."""
    torch = _torch()
    gm = _trace(module, example_input)
    b = NetworkBuilder(name or type(module).__name__, tuple(int(d) for d in example_input.shape[1:]))
    tensor, producer = {}, {}
    weights, biases, skipped = {}, {}, []
    for node in gm.graph.nodes:
        kind = _kind(gm, node)
        label = node.target if node.op == "call_module" else node.name
        if kind == "placeholder":
            tensor[node] = b.input
            continue
        if kind in ("output", "get_attr", "scalar"):
            continue
        args = [a for a in node.args if isinstance(a, torch.fx.Node)]
        if kind in ("conv", "fc", "bn", "pool", "gpool", "pass", "flatten", "other") and (
                not args or args[0] not in tensor):
            raise InputError(f"{label}: reads something hwprune did not import")
        x = tensor.get(args[0]) if args else None
        if kind == "conv":
            mod = gm.get_submodule(node.target)
            if mod.dilation != (1, 1) or isinstance(mod.padding, str) and mod.padding != "valid":
                raise InputError(f"{label} (Conv2d): dilation and string padding are not supported")
            pad = (0, 0) if mod.padding == "valid" else mod.padding
            out = b.conv(label, x, mod.out_channels, mod.kernel_size, mod.stride, pad, mod.groups,
                         mod.bias is not None)
            weights[out], biases[out] = _weight_and_bias(mod, mod.out_channels)
            producer[out] = "conv"
        elif kind == "fc":
            mod = gm.get_submodule(node.target)
            out = b.fc(label, x, mod.out_features, mod.bias is not None)
            weights[out], biases[out] = _weight_and_bias(mod, mod.out_features)
            producer[out] = "fc"
        elif kind == "bn":
            mod = gm.get_submodule(node.target)
            if producer.get(x) in ("conv", "fc") and len(args[0].users) == 1:
                g = mod.weight.detach().numpy() if mod.affine else np.ones(mod.num_features)
                be = mod.bias.detach().numpy() if mod.affine else np.zeros(mod.num_features)
                weights[x], biases[x] = fold_batchnorm(weights[x], biases[x], g, be,
                                                       mod.running_mean.numpy(), mod.running_var.numpy(),
                                                       mod.eps)
                out = x
            else:
                out = b.batchnorm(label, x)
        elif kind == "pool":
            mod = gm.get_submodule(node.target)
            if getattr(mod, "dilation", 1) not in (1, (1, 1)):
                raise InputError(f"{label} (MaxPool2d): dilation is not supported")
            out = b.add_layer(label, Pool2d("max" if isinstance(mod, torch.nn.MaxPool2d) else "avg",
                                            mod.kernel_size, mod.stride or mod.kernel_size, mod.padding,
                                            bool(mod.ceil_mode)), [x])
        elif kind == "gpool":
            mod = gm.get_submodule(node.target)
            if mod.output_size not in (1, (1, 1)):
                raise InputError(f"{label}: adaptive pooling to {mod.output_size} is not supported; "
                                 "accepted: output size 1")
            out = b.add_layer(label, GlobalPool("avg" if isinstance(mod, torch.nn.AdaptiveAvgPool2d)
                                                else "max"), [x])
        elif kind == "add":
            ins = [tensor[a] for a in args]
            if len(ins) != 2:
                raise InputError(f"{label}: hwprune imports additions of two tensors")
            out = b.add(label, ins)
        elif kind == "cat":
            seq = node.args[0]
            dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
            if dim != 1:
                raise InputError(f"{label}: only concatenation on channels (dim 1) is supported")
            out = b.concat(label, [tensor[a] for a in seq])
        elif kind == "flatten":
            shape = _shape(node)
            if shape is None or len(shape) != 1:
                raise InputError(f"{label}: only a flatten to (batch, features) is supported, "
                                 f"got shape {shape}")
            out = b.flatten(label, x) if len(b.shape(x)) > 1 else x
        elif kind == "pass":
            out = x
        else:
            params = (node.op == "call_module"
                      and any(True for _ in gm.get_submodule(node.target).parameters()))
            what = (type(gm.get_submodule(node.target)).__name__ if node.op == "call_module"
                    else getattr(node.target, "__name__", str(node.target)))
            skip_unsupported(what, label, params, b.shape(x), _shape(node), skipped)
            out = x
        tensor[node] = out
    net = b.build(description=f"imported from torch ({type(module).__name__})", source="torch.fx")
    return ImportedModel(net, weights, biases, tuple(skipped))


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


def compact(module, keep_units: Mapping[str, np.ndarray], example_input):
    """A copy of ``module`` with each named layer cut to its kept output units (a bool
    per unit), its batch norms and the next conv/linear layer's inputs cut to match."""
    torch = _torch()
    import copy

    from torch.nn.utils import prune

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
    for mod in new.modules():                  # masks attached by apply_masks: make permanent
        for param in ("weight", "bias"):
            if hasattr(mod, f"{param}_orig"):
                prune.remove(mod, param)
    gm = _trace(new, example_input)
    nodes = {n.target: n for n in gm.graph.nodes if n.op == "call_module"}
    with torch.no_grad():
        for name, keep in keep_units.items():
            keep = np.asarray(keep, dtype=bool)
            if name not in nodes or _kind(gm, nodes[name]) not in ("conv", "fc"):
                raise InputError(f"{name!r} is not a conv or linear layer of the module")
            mod = new.get_submodule(name)
            idx = torch.as_tensor(np.flatnonzero(keep))
            if keep.size != mod.weight.shape[0] or idx.numel() == 0:
                raise InputError(f"{name}: keep_units needs {mod.weight.shape[0]} entries with at "
                                 "least one kept")
            bns, consumer, positions = _downstream(gm, nodes[name])
            if isinstance(mod, torch.nn.Conv2d) and mod.groups != 1:
                raise InputError(f"{name}: grouped convolutions cannot be compacted")
            mod.weight = torch.nn.Parameter(mod.weight[idx].clone())
            if mod.bias is not None:
                mod.bias = torch.nn.Parameter(mod.bias[idx].clone())
            if isinstance(mod, torch.nn.Conv2d):
                mod.out_channels = idx.numel()
            else:
                mod.out_features = idx.numel()
            for bn in bns:
                bnm = new.get_submodule(bn.target)
                for attr in ("weight", "bias"):
                    if getattr(bnm, attr) is not None:
                        setattr(bnm, attr, torch.nn.Parameter(getattr(bnm, attr)[idx].clone()))
                bnm.running_mean = bnm.running_mean[idx].clone()
                bnm.running_var = bnm.running_var[idx].clone()
                bnm.num_features = idx.numel()
            if consumer is None:
                raise InputError(f"{name}: the model's output layer keeps its outputs")
            cmod = new.get_submodule(consumer.target)
            cols = idx if positions == 1 else torch.as_tensor(
                (np.flatnonzero(keep)[:, None] * positions + np.arange(positions)[None, :]).ravel())
            cmod.weight = torch.nn.Parameter(cmod.weight[:, cols].clone())
            if isinstance(cmod, torch.nn.Conv2d):
                cmod.in_channels = idx.numel()
            else:
                cmod.in_features = cols.numel()
    return new
