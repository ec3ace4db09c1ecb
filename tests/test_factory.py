"""MODULE:FACTORY loading for --model and --data (hwprune.workload.factory)."""

from __future__ import annotations

import sys
import textwrap
import types

import pytest

from hwprune.errors import InputError
from hwprune.workload import factory as fac

torch = pytest.importorskip("torch")

GOOD_MODEL = """
import torch

def make():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(2 * 6 * 6, 3))
    return net, torch.randn(1, 1, 8, 8)

class Zoo:
    @staticmethod
    def small():
        return make()

NOT_CALLABLE = 3

def needs_args(width):
    return make()

def boom():
    raise RuntimeError("boom\\nsecond line")

def three():
    return 3

def no_tensor():
    return make()[0], [1, 2]

def no_module():
    return "net", torch.randn(1, 4)

def flat():
    return make()[0], torch.randn(4)
"""

GOOD_DATA = """
import types

BATCHES = [([1.0, 2.0], [0]), ([3.0, 4.0], [1])]

def loaders():
    return BATCHES, list(BATCHES)

def callbacks():
    return {"evaluate": lambda model: 0.5, "finetune": lambda model, epochs: None}

def callbacks_object():
    return types.SimpleNamespace(evaluate=lambda model: 0.5, finetune=lambda model, epochs: None)

def generator():
    return (b for b in BATCHES), BATCHES

def three_loaders():
    return BATCHES, BATCHES, BATCHES

def half_callbacks():
    return {"evaluate": lambda model: 0.5}

def bad_evaluate():
    return {"evaluate": 0.5, "finetune": lambda model, epochs: None}

def evaluate_no_args():
    return {"evaluate": lambda: 0.5, "finetune": lambda model, epochs: None}

def not_a_loader():
    return 3, BATCHES

def number():
    return 7
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def model_file(tmp_path):
    return write(tmp_path, "mymodels.py", GOOD_MODEL)


@pytest.fixture
def data_file(tmp_path):
    return write(tmp_path, "mydata.py", GOOD_DATA)


def one_line_error(call, *needles):
    with pytest.raises(InputError) as info:
        call()
    text = str(info.value)
    assert "\n" not in text, text
    for needle in needles:
        assert needle in text, text
    return text


# ------------------------------------------------------------------------- good

def test_good_model_factory_from_py_file(model_file):
    user = fac.load_model(f"{model_file}:make")
    assert isinstance(user, fac.UserModel)
    assert isinstance(user.module, torch.nn.Module)
    assert tuple(user.example_input.shape) == (1, 1, 8, 8)
    assert user.name == "Sequential" and user.spec == f"{model_file}:make"
    with pytest.raises(AttributeError):          # frozen
        user.name = "x"


def test_good_model_factory_nested_attribute(model_file):
    assert fac.load_model(f"{model_file}:Zoo.small").name == "Sequential"


def test_good_model_factory_by_module_name_in_current_directory(tmp_path, monkeypatch):
    write(tmp_path, "hwprune_test_models_cwd.py", GOOD_MODEL)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "hwprune_test_models_cwd", raising=False)
    path_before = list(sys.path)
    user = fac.load_model("hwprune_test_models_cwd:make")
    assert user.name == "Sequential"
    assert sys.path == path_before               # the current directory was added only to import


def test_good_data_factory_loaders(data_file):
    data = fac.load_data(f"{data_file}:loaders")
    assert data.kind == "loaders"
    assert len(data.train_loader) == 2 and len(data.test_loader) == 2
    assert data.evaluate is None and data.finetune is None


@pytest.mark.parametrize("name", ["callbacks", "callbacks_object"])
def test_good_data_factory_callbacks(data_file, name):
    data = fac.load_data(f"{data_file}:{name}")
    assert data.kind == "callbacks"
    assert data.evaluate(None) == 0.5
    assert data.train_loader is None


def test_user_data_refuses_both_kinds():
    one_line_error(lambda: fac.UserData([1], [2], lambda m: 1.0, lambda m, e: None), "not both")


# ------------------------------------------------------------------------ specs

@pytest.mark.parametrize("spec, needle", [
    ("mymodels", "has no colon"),
    (":make", "empty MODULE"),
    ("mymodels:", "empty FACTORY"),
    ("mymodels:1bad", "is not a Python name"),
    (3, "got 3 (int)"),
])
def test_malformed_spec(spec, needle):
    one_line_error(lambda: fac.load_model(spec), needle, "MODULE:FACTORY")


def test_missing_module():
    one_line_error(lambda: fac.load_model("hwprune_no_such_module_xyz:make"),
                   "no module named 'hwprune_no_such_module_xyz'", "PYTHONPATH", ".py file")


def test_missing_py_file(tmp_path):
    one_line_error(lambda: fac.load_model(f"{tmp_path / 'gone.py'}:make"), "no such file")


def test_path_that_is_not_a_py_file(tmp_path):
    (tmp_path / "m.txt").write_text("")
    one_line_error(lambda: fac.load_model(f"{tmp_path / 'm.txt'}:make"), "not a .py file")


def test_module_with_a_missing_import(tmp_path):
    path = write(tmp_path, "deps.py", "import hwprune_no_such_dependency_xyz\n")
    one_line_error(lambda: fac.load_model(f"{path}:make"), "imports something that is missing",
                   "hwprune_no_such_dependency_xyz")


def test_module_raising_on_import(tmp_path):
    path = write(tmp_path, "raises.py", "raise ValueError('bad config')\n")
    one_line_error(lambda: fac.load_model(f"{path}:make"), "raised ValueError: bad config", "runs its code")


def test_missing_attribute(model_file):
    text = one_line_error(lambda: fac.load_model(f"{model_file}:nope"), "has no attribute 'nope'")
    assert "make" in text                        # the callables it does have


def test_not_callable(model_file):
    one_line_error(lambda: fac.load_model(f"{model_file}:NOT_CALLABLE"), "3 (int), not a callable")


def test_factory_needing_arguments(model_file):
    one_line_error(lambda: fac.load_model(f"{model_file}:needs_args"), "needs_args(width) needs arguments")


def test_factory_raising(model_file):
    one_line_error(lambda: fac.load_model(f"{model_file}:boom"),
                   "the factory raised RuntimeError: boom second line")


@pytest.mark.parametrize("name, needles", [
    ("three", ["returned 3 (int)", "(module, example_input)"]),
    ("no_tensor", ["second value is a list of 2", "torch.Tensor"]),
    ("no_module", ["first value is 'net' (str)", "torch.nn.Module"]),
    ("flat", ["shape (4,)", "(batch, ...)"]),
])
def test_model_factory_wrong_return(model_file, name, needles):
    one_line_error(lambda: fac.load_model(f"{model_file}:{name}"), *needles)


@pytest.mark.parametrize("name, needles", [
    ("generator", ["one-shot iterator", "DataLoader"]),
    ("three_loaders", ["returned a tuple of 3", "(train_loader, test_loader)"]),
    ("half_callbacks", ["has no finetune", "evaluate(model) -> float"]),
    ("bad_evaluate", ["evaluate is 0.5 (float), not a callable"]),
    ("evaluate_no_args", ["cannot be called as evaluate(model) -> float"]),
    ("not_a_loader", ["train_loader is 3 (int)", "re-iterable"]),
    ("number", ["returned 7 (int)", "(train_loader, test_loader)"]),
])
def test_data_factory_wrong_return(data_file, name, needles):
    one_line_error(lambda: fac.load_data(f"{data_file}:{name}"), "--data", *needles)


def test_torch_missing(model_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)       # import torch now fails
    one_line_error(lambda: fac.load_model(f"{model_file}:make"), "pip install 'hwprune[torch]'")


def test_user_module_importing_missing_torch(tmp_path, monkeypatch):
    path = write(tmp_path, "needs_torch.py", "import torch\n\ndef data():\n    return [], []\n")
    monkeypatch.setitem(sys.modules, "torch", None)
    one_line_error(lambda: fac.load_data(f"{path}:data"), "imports torch", "pip install 'hwprune[torch]'")


def test_check_model_accepts_a_list():
    net = torch.nn.Linear(4, 2)
    assert fac.check_model([net, torch.randn(2, 4)]).module is net


# ------------------------------------------------------------------------- .onnx

@pytest.mark.parametrize("value, expected", [
    ("model.onnx", True), ("dir/Model.ONNX", True), ("lenet", False), ("model.pt", False),
    (types.SimpleNamespace(), False),
])
def test_is_onnx_path(value, expected):
    assert fac.is_onnx_path(value) is expected


def test_check_trainable():
    fac.check_trainable("prune", "lenet-300-100")
    one_line_error(lambda: fac.check_trainable("prune", "m.onnx"),
                   "prune needs a trainable model: an .onnx file has no training; pass a torch model "
                   "with --model MODULE:FACTORY and --data MODULE:FACTORY")
