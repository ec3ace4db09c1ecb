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
