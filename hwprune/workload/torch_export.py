"""A pruned PyTorch model out: a ``state_dict`` file and an ONNX file.

* :func:`save_state_dict` writes ``module.state_dict()`` with ``torch.save``. Masks
  attached through ``torch.nn.utils.prune`` (``weight_orig`` and ``weight_mask``) are
  made permanent on a copy first (``prune.remove``), so the file holds plain
  ``weight``/``bias`` keys with the pruned entries zero, and loads into a freshly
  built module with ``module.load_state_dict(torch.load(path, weights_only=True))``.
  The user's module is not changed.
* A *compacted* model (:func:`hwprune.workload.torch_import.compact`) is saved the same
  way. Its tensors carry their new shapes, so no second file is needed; a freshly built
  module of the original shape takes them through :func:`load_state_dict`, which first
  resizes each Conv2d, Linear and BatchNorm whose saved shape differs (updating
  ``in_channels``/``out_channels``/``groups``, ``in_features``/``out_features``,
  ``num_features``). Chosen over pickling the whole module (``torch.save(module)``):
  that file can be read only with ``weights_only=False``, which runs arbitrary code, and
  only while the class's source is unchanged and importable.
* :func:`export_onnx` writes an ONNX file with torch's TorchScript-based exporter
  (``torch.onnx.export(..., dynamo=False)``; the default exporter of torch >= 2.9,
  dynamo, needs the onnxscript package, which hwprune does not require). It exports an
  eval-mode copy with ``training=TrainingMode.PRESERVE``, so that batch norms stay
  ``BatchNormalization`` nodes (hwprune folds them on import exactly as
  :func:`~hwprune.workload.torch_import.from_torch` does; the exporter's own fold adds a
  bias to a bias-free convolution, which would count one parameter per channel more),
  and ``keep_initializers_as_inputs=True``, which turns off the exporter's merging of
  identical initialisers into ``Identity`` nodes (zero biases, unit scales of a freshly
  built model), which hwprune's importer cannot read (issue 21).
* :func:`reimport_check` imports the ONNX file back into hwprune and compares its MACs
  and parameter counts with ``from_torch`` on the same module.

Every file is written to a temporary file in the same directory and renamed into place
(``os.replace``), so a failure leaves no partial file; the path is checked before any
work (its directory exists and is writable, the name is not a directory).
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import io
import os
import stat
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checks import file_kind, regular_file
from ..errors import HwpruneError, InputError

TORCH_INSTALL = "pip install 'hwprune[torch]'"


def _torch():
    try:
        import torch
        import torch.nn.utils.prune  # noqa: F401
    except ImportError:
        raise InputError(f"exporting PyTorch modules needs torch: {TORCH_INSTALL}") from None
    return torch


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = text if len(text) <= 300 else text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ----------------------------------------------------------------------- writing

def check_out_file(path: str | os.PathLike, what: str = "output file") -> Path:
    """``path`` as a Path if a file can be written there (its directory exists and is
    writable; it is not a directory or other non-regular file), else an InputError.
    Called before any work, so that a typo costs nothing."""
    if not isinstance(path, (str, os.PathLike)) or isinstance(os.fspath(path), bytes):
        raise InputError(f"{what} must be a file path (text), got {type(path).__name__}")
    text = os.fspath(path)
    if not text or text.endswith(("/", os.sep)):
        raise InputError(f"cannot write {what} {text!r}: give a file name")
    path = Path(text)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        info = None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot write {what} {text}: {getattr(exc, 'strerror', None) or exc}") from None
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise InputError(f"cannot write {what} {text}: it is {file_kind(info.st_mode)}; give a file name")
    real = Path(os.path.realpath(path))
    if not real.parent.is_dir():
        raise InputError(f"cannot write {what} {text}: directory {real.parent} does not exist")
    if not os.access(real.parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {what} {text}: directory {real.parent} is not writable")
    return path


def _write_atomic(path: Path, data: bytes, what: str) -> None:
    """``data`` into ``path`` through a temporary file in the same directory and
    ``os.replace`` (a symbolic link stays a link; its target is replaced)."""
    real = Path(os.path.realpath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{real.name[:64]}.hwprune-{os.getpid()}-", suffix=".tmp",
                                   dir=real.parent)
    except OSError as exc:
        raise InputError(f"cannot write {what} {path}: {exc.strerror or exc}") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, real)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise InputError(f"cannot write {what} {path}: {exc.strerror or exc}") from None
        raise


# ------------------------------------------------------------------ permanent masks

def permanent_copy(module):
    """A deep copy of ``module`` with every ``torch.nn.utils.prune`` reparametrisation
    made permanent (``prune.remove``): plain ``weight``/``bias`` parameters holding the
    masked values. ``module`` itself keeps its masks."""
    torch = _torch()
    from torch.nn.utils import prune

    if not isinstance(module, torch.nn.Module):
        raise InputError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    # A masked parameter is a computed (non-leaf) tensor, which deepcopy refuses: copy
    # with detached stand-ins, then put the originals back.
    saved = []
    for mod in module.modules():
        for hook in list(mod._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                name = hook._tensor_name
                value = mod.__dict__.get(name)
                if isinstance(value, torch.Tensor):
                    saved.append((mod, name, value))
                    mod.__dict__[name] = value.detach()
    try:
        new = copy.deepcopy(module)
    finally:
        for mod, name, value in saved:
            mod.__dict__[name] = value
    for mod in new.modules():
        for hook in list(mod._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                prune.remove(mod, hook._tensor_name)
    return new


# -------------------------------------------------------------------- state_dict

def save_state_dict(module, path: str | os.PathLike) -> Path:
    """Write ``module``'s state_dict (masks made permanent, see the module docstring)
    to ``path`` with ``torch.save``; returns the path."""
    path = check_out_file(path, "state_dict file")
    _write_atomic(path, state_dict_bytes(module), "state_dict file")
    return path


def state_dict_bytes(module) -> bytes:
    """The bytes :func:`save_state_dict` writes (for a caller with its own atomic
    writer, such as the CLI's output directories)."""
    torch = _torch()
    buffer = io.BytesIO()
    torch.save(permanent_copy(module).state_dict(), buffer)
    return buffer.getvalue()


def _resize(torch, name: str, mod, shapes: dict[str, tuple[int, ...]]) -> None:
    """Give ``mod`` (a Conv2d, Linear or BatchNorm) the parameter shapes in ``shapes``."""
    if isinstance(mod, torch.nn.Conv2d):
        out, per_group = shapes["weight"][0], shapes["weight"][1]
        depthwise = mod.groups > 1 and mod.groups == mod.in_channels == mod.out_channels
        groups = out if depthwise else mod.groups
        if out % groups:
            raise InputError(f"{name}: saved weight {shapes['weight']} does not fit groups={groups}")
        mod.out_channels, mod.in_channels, mod.groups = out, per_group * groups, groups
    elif isinstance(mod, torch.nn.Linear):
        mod.out_features, mod.in_features = shapes["weight"][0], shapes["weight"][1]
    elif isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
        mod.num_features = next(s[0] for k, s in shapes.items() if k != "num_batches_tracked")
    else:
        raise InputError(f"{name} ({type(mod).__name__}): saved shapes differ from the module's and "
                         "only Conv2d, Linear and BatchNorm layers can be resized")
    for key, shape in shapes.items():
        old = getattr(mod, key, None)
        if not isinstance(old, torch.Tensor) or tuple(old.shape) == shape:
            continue
        new = torch.zeros(shape, dtype=old.dtype, device=old.device)
        if isinstance(old, torch.nn.Parameter):
            setattr(mod, key, torch.nn.Parameter(new, requires_grad=old.requires_grad))
        else:
            setattr(mod, key, new)


def load_state_dict(module, path: str | os.PathLike):
    """Load a file written by :func:`save_state_dict` into ``module`` (a freshly built
    instance of the same class; with ``torch.load(weights_only=True)``, which runs no
    code from the file). Conv2d, Linear and BatchNorm layers whose saved shapes differ
    (a compacted model) are resized first. Returns ``module``."""
    torch = _torch()
    regular_file(path, f"state_dict file {os.fspath(path)}", "a file written by save_state_dict")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"cannot read state_dict file {os.fspath(path)}: {_one_line(exc)}") from None
    if not isinstance(state, dict):
        raise InputError(f"state_dict file {os.fspath(path)} holds a {type(state).__name__}, not a "
                         "state_dict")
    current = module.state_dict()
    owners = sorted({key.rpartition(".")[0] for key, value in state.items()
                     if isinstance(value, torch.Tensor) and key in current
                     and tuple(current[key].shape) != tuple(value.shape)})
    for owner in owners:                    # each layer whose saved shapes differ
        prefix = owner + "." if owner else ""
        shapes = {k[len(prefix):]: tuple(v.shape) for k, v in state.items()
                  if k.startswith(prefix) and "." not in k[len(prefix):]}
        _resize(torch, owner or type(module).__name__, module.get_submodule(owner), shapes)
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(f"state_dict file {os.fspath(path)} does not fit {type(module).__name__}: "
                         f"{_one_line(exc)}") from None
    return module


# -------------------------------------------------------------------------- ONNX

def export_onnx(module, example_input, path: str | os.PathLike, opset: int | None = None) -> Path:
    """Export ``module`` (masks made permanent, on an eval-mode copy) run on
    ``example_input`` to the ONNX file ``path`` with torch's TorchScript-based exporter
    (see the module docstring for the settings and why); returns the path.
    ``opset``: the ONNX opset version, None for the exporter's default."""
    path = check_out_file(path, "ONNX file")
    _write_atomic(path, onnx_bytes(module, example_input, opset), "ONNX file")
    return path


def onnx_bytes(module, example_input, opset: int | None = None) -> bytes:
    """The bytes :func:`export_onnx` writes (for a caller with its own atomic writer)."""
    torch = _torch()
    if not isinstance(example_input, torch.Tensor):
        raise InputError(f"example_input must be a torch.Tensor with a batch dimension, got "
                         f"{type(example_input).__name__}")
    model = permanent_copy(module).eval()
    kwargs: dict[str, Any] = {"training": torch.onnx.TrainingMode.PRESERVE,
                              "keep_initializers_as_inputs": True, "input_names": ["input"],
                              "output_names": ["output"]}
    if opset is not None:
        kwargs["opset_version"] = opset
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:   # torch >= 2.5
        kwargs["dynamo"] = False
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", DeprecationWarning)      # "legacy exporter" notices
            warnings.simplefilter("ignore", FutureWarning)
            # PRESERVE on an eval-mode copy: its advice about training mode does not apply.
            warnings.filterwarnings("ignore", message=".*constant folding be turned off.*")
            torch.onnx.export(model, (example_input,), buffer, **kwargs)
    except Exception as exc:
        raise InputError(f"torch.onnx.export cannot export {type(module).__name__}: "
                         f"{_one_line(exc)}") from None
    return buffer.getvalue()


@dataclass(frozen=True)
class ReimportCheck:
    """MACs and weights (parameters) per inference, from ``from_torch`` on the module
    and from hwprune's ONNX importer on the exported file."""

    macs_torch: int
    macs_onnx: int
    params_torch: int
    params_onnx: int

    @property
    def ok(self) -> bool:
        return self.macs_torch == self.macs_onnx and self.params_torch == self.params_onnx


def reimport_check(module, example_input, path: str | os.PathLike, strict: bool = True) -> ReimportCheck:
    """Import the ONNX file ``path`` back into hwprune and compare its MACs and
    parameter counts with :func:`~hwprune.workload.torch_import.from_torch` on
    ``module`` (masks made permanent). With ``strict``, a difference is a
    :class:`~hwprune.errors.HwpruneError` giving both counts."""
    from .onnx_import import load_onnx
    from .torch_import import from_torch

    ref = from_torch(permanent_copy(module).eval(), example_input).network
    got = load_onnx(path).network
    result = ReimportCheck(ref.macs, got.macs, ref.params, got.params)
    if strict and not result.ok:
        raise HwpruneError(f"{os.fspath(path)} imports back with {got.macs} MACs and {got.params} "
                           f"parameters; from_torch gives {ref.macs} and {ref.params}")
    return result
