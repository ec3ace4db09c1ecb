"""The user's own model and data, named on the command line as ``MODULE:FACTORY``.

``--model MODULE:FACTORY`` names a callable that takes no arguments and returns
``(module, example_input)``: a ``torch.nn.Module`` and a ``torch.Tensor`` with a batch
dimension (e.g. ``torch.randn(1, 3, 32, 32)``). :func:`load_model` calls it and returns
a :class:`UserModel`.

``--data MODULE:FACTORY`` names a callable that takes no arguments and returns either

* ``(train_loader, test_loader)``: two re-iterable sources of ``(inputs, targets)``
  batches (``torch.utils.data.DataLoader`` or a list of batches; a one-shot generator
  is refused, since fine-tuning reads the training data once per epoch), or
* the two callbacks, as a mapping ``{"evaluate": ..., "finetune": ...}`` or an object
  with those two attributes: ``evaluate(model) -> float`` (accuracy or any
  higher-is-better score) and ``finetune(model, epochs)`` (trains ``model`` in place).

:func:`load_data` calls it and returns a :class:`UserData`.

MODULE is either an importable module name (``pkg.models``; the current directory is
searched first, as ``python -m`` does) or a path to a ``.py`` file
(``path/to/models.py:make``). FACTORY is an attribute of that module, dotted for a
nested one (``Zoo.make``).

**Importing a module runs its code**, and calling the factory runs more: give only
files you trust, exactly as with ``python path/to/file.py``.

Every mistake is an :class:`~hwprune.errors.InputError` of one line naming what was
expected (the CLI prints it as ``hwprune: error: ...`` and exits with status 2): a
malformed spec, a module that cannot be found or fails to import, a missing attribute,
one that is not callable, a factory that raises (its exception type and message), a
return value of the wrong type, and a missing torch (``pip install 'hwprune[torch]'``).

:func:`is_onnx_path` and :func:`check_trainable` serve the verbs that need training:
an ``.onnx`` file has weights but no training, so those verbs refuse it with the text
of :func:`needs_training_message`.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..checks import regular_file
from ..errors import InputError

MODEL_ACCEPTED = ("MODULE:FACTORY, a callable with no arguments that returns (module, example_input): "
                  "a torch.nn.Module and a torch.Tensor with a batch dimension")
DATA_ACCEPTED = ("MODULE:FACTORY, a callable with no arguments that returns (train_loader, "
                 "test_loader), or a mapping or object with the callbacks evaluate(model) -> float "
                 "and finetune(model, epochs)")
SPEC_FORM = ("MODULE:FACTORY, where MODULE is an importable module name (pkg.mod) or a path to a "
             ".py file, and FACTORY a callable in it (e.g. models.py:make)")
TORCH_INSTALL = "pip install 'hwprune[torch]'"


@dataclass(frozen=True)
class UserModel:
    """What a ``--model`` factory returned, checked.

    Attributes:
        module: the ``torch.nn.Module``.
        example_input: a ``torch.Tensor`` with a batch dimension, ``(batch, ...)``.
        name: the module's class name (used as the network's name).
        spec: the ``MODULE:FACTORY`` text it came from.
    """

    module: Any
    example_input: Any
    name: str
    spec: str = ""


@dataclass(frozen=True)
class UserData:
    """What a ``--data`` factory returned, checked: either both loaders or both
    callbacks (:attr:`kind` says which); the other pair is None.

    Attributes:
        train_loader, test_loader: re-iterable sources of ``(inputs, targets)`` batches.
        evaluate: ``evaluate(model) -> float``, higher is better.
        finetune: ``finetune(model, epochs)``, trains in place.
        spec: the ``MODULE:FACTORY`` text it came from.
    """

    train_loader: Any = None
    test_loader: Any = None
    evaluate: Callable[[Any], float] | None = None
    finetune: Callable[[Any, int], Any] | None = None
    spec: str = ""

    def __post_init__(self) -> None:
        has_loaders = self.train_loader is not None or self.test_loader is not None
        has_callbacks = self.evaluate is not None or self.finetune is not None
        if has_loaders and has_callbacks:
            raise InputError("data must be (train_loader, test_loader) or the two callbacks evaluate "
                             "and finetune, not both")
        if not has_callbacks:
            for what, loader in (("train_loader", self.train_loader), ("test_loader", self.test_loader)):
                _check_loader(loader, what, self.spec)
        else:
            _check_callback(self.evaluate, "evaluate", 1, "evaluate(model) -> float", self.spec)
            _check_callback(self.finetune, "finetune", 2, "finetune(model, epochs)", self.spec)

    @property
    def kind(self) -> str:
        """``"loaders"`` or ``"callbacks"``."""
        return "callbacks" if self.evaluate is not None else "loaders"

    def adapter_args(self) -> dict:
        """The keyword arguments of a torch adapter (and of the API's functions):
        ``loaders=`` or ``evaluate=``/``finetune=``."""
        if self.kind == "loaders":
            return {"loaders": (self.train_loader, self.test_loader)}
        return {"evaluate": self.evaluate, "finetune": self.finetune}


# ------------------------------------------------------------------------ helpers

def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = text if len(text) <= 300 else text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _describe(value: Any) -> str:
    """What a returned value is, in a few words, for an error message."""
    if isinstance(value, (tuple, list)):
        inner = ", ".join(type(v).__name__ for v in value[:4]) + (", ..." if len(value) > 4 else "")
        return f"a {type(value).__name__} of {len(value)} ({inner})"
    text = repr(value)
    return f"{text} ({type(value).__name__})" if len(text) <= 40 else f"a {type(value).__name__}"


def _torch(what: str):
    try:
        import torch
    except ImportError:
        raise InputError(f"{what} needs torch: {TORCH_INSTALL}") from None
    return torch


def parse_spec(spec: Any, option: str = "--model") -> tuple[str, str]:
    """``(module, factory)`` from ``"MODULE:FACTORY"``; the last colon splits, so that a
    Windows path ``C:\\m.py:make`` works. A malformed spec is an InputError."""
    if not isinstance(spec, str):
        raise InputError(f"{option} must be {SPEC_FORM}, got {_describe(spec)}")
    module, colon, factory = spec.strip().rpartition(":")
    if not colon:
        raise InputError(f"{option} {spec!r} has no colon; give {SPEC_FORM}")
    if not module or not factory:
        missing = "MODULE" if not module else "FACTORY"
        raise InputError(f"{option} {spec!r} has an empty {missing}; give {SPEC_FORM}")
    if not all(part.isidentifier() for part in factory.split(".")):
        raise InputError(f"{option} {spec!r}: FACTORY {factory!r} is not a Python name; give {SPEC_FORM}")
    return module, factory


def _is_path(module: str) -> bool:
    return module.endswith(".py") or "/" in module or os.sep in module


def _import_file(path_text: str, option: str, spec: str):
    path = Path(path_text)
    if path.suffix != ".py":
        raise InputError(f"{option} {spec!r}: {path_text} is a path but not a .py file; give "
                         f"{SPEC_FORM}")
    regular_file(path, f"{option} {spec!r}: {path_text}", "a readable .py file or an importable module")
    name = "hwprune_user_" + "".join(c if c.isalnum() else "_" for c in str(path.resolve()))
    if name in sys.modules:                 # the same file loaded twice in one process
        return sys.modules[name]
    loader_spec = importlib.util.spec_from_file_location(name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise InputError(f"{option} {spec!r}: cannot load {path_text} as Python; give {SPEC_FORM}")
    mod = importlib.util.module_from_spec(loader_spec)
    sys.modules[name] = mod                 # dataclasses and pickling look themselves up here
    try:
        loader_spec.loader.exec_module(mod)
    except BaseException as exc:
        sys.modules.pop(name, None)
        if not isinstance(exc, Exception):
            raise
        raise _import_failure(option, spec, path_text, exc) from None
    return mod


def _import_failure(option: str, spec: str, where: str, exc: Exception) -> InputError:
    """The error for a module whose own code failed while it was imported."""
    if isinstance(exc, ImportError) and (exc.name or "").split(".")[0] == "torch":
        return InputError(f"{option} {spec!r}: {where} imports torch, which is not installed: "
                          f"{TORCH_INSTALL}")
    if isinstance(exc, ImportError):
        return InputError(f"{option} {spec!r}: importing {where} failed, it imports something that is "
                          f"missing ({_one_line(exc)})")
    return InputError(f"{option} {spec!r}: importing {where} raised {_one_line(exc)} (importing a "
                      "module runs its code)")


def _import_name(module: str, option: str, spec: str):
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:                               # as python -m does: the current directory first
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module == missing or module.startswith(missing + ".")):
            raise InputError(f"{option} {spec!r}: no module named {module!r}; MODULE must be importable "
                             "(on PYTHONPATH or in the current directory) or a path to a .py file, "
                             "e.g. path/to/models.py:make") from None
        raise _import_failure(option, spec, module, exc) from None
    except Exception as exc:
        raise _import_failure(option, spec, module, exc) from None
    finally:
        if added:
            try:
                sys.path.remove(cwd)
            except ValueError:
                pass


def load_factory(spec: Any, option: str = "--model") -> Callable[[], Any]:
    """The callable that ``spec`` (``MODULE:FACTORY``) names, imported (which runs the
    module's code) but not called. ``option`` names the spec in error messages."""
    module_name, factory = parse_spec(spec, option)
    mod = (_import_file(module_name, option, spec) if _is_path(module_name)
           else _import_name(module_name, option, spec))
    obj: Any = mod
    for i, part in enumerate(factory.split(".")):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            owner = module_name if i == 0 else ".".join([module_name] + factory.split(".")[:i])
            public = sorted(n for n, v in vars(mod).items()
                            if callable(v) and not n.startswith("_")) if i == 0 else []
            found = f"; its callables: {', '.join(public[:12])}" if public else ""
            raise InputError(f"{option} {spec!r}: {owner} has no attribute {part!r}{found}") from None
        except Exception as exc:            # a property or __getattr__ that raises
            raise InputError(f"{option} {spec!r}: reading {part!r} raised {_one_line(exc)}") from None
    if not callable(obj):
        raise InputError(f"{option} {spec!r}: {factory} is {_describe(obj)}, not a callable; "
                         f"give {SPEC_FORM}")
    try:
        inspect.signature(obj).bind()
    except TypeError:
        raise InputError(f"{option} {spec!r}: {factory}{inspect.signature(obj)} needs arguments; the "
                         "factory is called with none") from None
    except ValueError:                      # no signature to read (some built-ins)
        pass
    return obj


def _call(factory: Callable[[], Any], option: str, spec: str) -> Any:
    try:
        return factory()
    except Exception as exc:
        raise InputError(f"{option} {spec!r}: the factory raised {_one_line(exc)}") from None


# -------------------------------------------------------------------------- model

def check_model(value: Any, option: str = "--model", spec: str = "") -> UserModel:
    """A factory's return value as a :class:`UserModel`, or an InputError saying what
    was returned and what is accepted."""
    torch = _torch("a torch model")
    where = f"{option} {spec!r}" if spec else option
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise InputError(f"{where}: the factory returned {_describe(value)}; accepted: (module, "
                         "example_input), a torch.nn.Module and a torch.Tensor with a batch dimension")
    module, example = value
    if not isinstance(module, torch.nn.Module):
        raise InputError(f"{where}: the factory's first value is {_describe(module)}; accepted: a "
                         "torch.nn.Module")
    if not isinstance(example, torch.Tensor):
        raise InputError(f"{where}: the factory's second value is {_describe(example)}; accepted: a "
                         "torch.Tensor with a batch dimension, e.g. torch.randn(1, 3, 32, 32)")
    if example.dim() < 2 or example.numel() == 0:
        raise InputError(f"{where}: the example input has shape {tuple(example.shape)}; accepted: "
                         "(batch, ...) with no zero dimension, e.g. torch.randn(1, 3, 32, 32)")
    return UserModel(module, example, type(module).__name__, spec)


def load_model(spec: Any, option: str = "--model") -> UserModel:
    """Import ``MODULE``, call ``FACTORY()`` and check that it returned
    ``(module, example_input)`` (see the module docstring; importing runs the module's
    code)."""
    _torch("--model")
    factory = load_factory(spec, option)
    return check_model(_call(factory, option, spec), option, spec)


# --------------------------------------------------------------------------- data

def _check_loader(loader: Any, what: str, spec: str) -> None:
    where = f"--data {spec!r}: " if spec else ""
    if isinstance(loader, (str, bytes, Mapping)) or not hasattr(loader, "__iter__"):
        raise InputError(f"{where}{what} is {_describe(loader)}; accepted: a re-iterable source of "
                         "(inputs, targets) batches such as a torch DataLoader or a list of batches")
    try:
        one_shot = iter(loader) is loader
    except Exception as exc:
        raise InputError(f"{where}{what}: iter() raised {_one_line(exc)}") from None
    if one_shot:
        raise InputError(f"{where}{what} is a one-shot iterator ({type(loader).__name__}); accepted: a "
                         "re-iterable source such as a torch DataLoader or a list of batches, since "
                         "training reads it once per epoch")


def _check_callback(fn: Any, what: str, n_args: int, form: str, spec: str) -> None:
    where = f"--data {spec!r}: " if spec else ""
    if not callable(fn):
        raise InputError(f"{where}{what} is {_describe(fn)}, not a callable; accepted: {form}")
    try:
        inspect.signature(fn).bind(*range(n_args))
    except TypeError:
        raise InputError(f"{where}{what}{inspect.signature(fn)} cannot be called as {form}") from None
    except ValueError:
        pass


def check_data(value: Any, option: str = "--data", spec: str = "") -> UserData:
    """A factory's return value as a :class:`UserData`, or an InputError saying what was
    returned and what is accepted."""
    where = f"{option} {spec!r}" if spec else option
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise InputError(f"{where}: the factory returned {_describe(value)}; accepted: "
                             "(train_loader, test_loader), or a mapping or object with the callbacks "
                             "evaluate(model) -> float and finetune(model, epochs)")
        return UserData(train_loader=value[0], test_loader=value[1], spec=spec)
    if isinstance(value, Mapping):
        missing = [k for k in ("evaluate", "finetune") if k not in value]
        get = value.get
    else:
        missing = [k for k in ("evaluate", "finetune") if not hasattr(value, k)]

        def get(key):
            return getattr(value, key)
    if missing:
        raise InputError(f"{where}: the factory returned {_describe(value)}, which has no "
                         f"{' and no '.join(missing)}; accepted: (train_loader, test_loader), or a "
                         "mapping or object with the callbacks evaluate(model) -> float and "
                         "finetune(model, epochs)")
    return UserData(evaluate=get("evaluate"), finetune=get("finetune"), spec=spec)


def load_data(spec: Any, option: str = "--data") -> UserData:
    """Import ``MODULE``, call ``FACTORY()`` and check what it returned (loaders or
    callbacks; see the module docstring; importing runs the module's code)."""
    factory = load_factory(spec, option)
    return check_data(_call(factory, option, spec), option, spec)


# ------------------------------------------------------------- on other processes

@dataclass(frozen=True)
class UserSource:
    """Where a study's worker processes get the user's model and data: the ``--model``
    and ``--data`` specs, a ``.py`` path made absolute (a worker may start elsewhere) and
    a module name as given (it must be importable on the worker: installed, or on its
    ``PYTHONPATH``, or in the directory the worker started in). A worker imports the
    modules and calls the factories again (:meth:`load`); the weights travel with the
    task, so a factory that initializes at random is fine."""

    model: str
    data: str | None = None

    @classmethod
    def of(cls, model: str, data: str | None = None) -> "UserSource":
        def fixed(spec: str | None, option: str) -> str | None:
            if spec is None:
                return None
            module, factory = parse_spec(spec, option)
            return f"{Path(module).resolve()}:{factory}" if _is_path(module) else spec.strip()

        return cls(fixed(model, "--model"), fixed(data, "--data"))

    def load(self) -> tuple[UserModel, UserData | None]:
        """Import and call the factories here (on a worker), checked as on the command line."""
        return load_model(self.model), (load_data(self.data) if self.data else None)

    def importable(self) -> str | None:
        """None if both factories can be imported here (not called), else the error's text."""
        try:
            load_factory(self.model, "--model")
            if self.data:
                load_factory(self.data, "--data")
        except InputError as exc:
            return str(exc)
        return None


# ---------------------------------------------------------------- .onnx networks

def is_onnx_path(network: Any) -> bool:
    """Whether a NETWORK argument names an ``.onnx`` file (by its suffix, any case;
    the file is not opened)."""
    if not isinstance(network, (str, os.PathLike)):
        return False
    text = os.fspath(network)
    return isinstance(text, str) and Path(text).suffix.lower() == ".onnx"


def needs_training_message(verb: str) -> str:
    """The error text for a verb that needs training given an ``.onnx`` file."""
    return (f"{verb} needs a trainable model: an .onnx file has no training; pass a torch model "
            "with --model MODULE:FACTORY and --data MODULE:FACTORY")


def check_trainable(verb: str, network: Any) -> None:
    """An InputError (:func:`needs_training_message`) if ``network`` is an ``.onnx`` file."""
    if is_onnx_path(network):
        raise InputError(needs_training_message(verb))
