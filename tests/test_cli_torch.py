"""``--model`` / ``--data MODULE:FACTORY`` on the command line: the user's PyTorch model
pruned and measured by the verbs that train, and its export."""

import json

import pytest

torch = pytest.importorskip("torch")

from hwprune import api  # noqa: E402
from hwprune.cli import main  # noqa: E402

FACTORIES = '''
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3)
        self.fc1 = nn.Linear(4 * 6 * 6, 16)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))

def make():
    torch.manual_seed(0)
    return Net(), torch.zeros(1, 1, 8, 8)

def loaders():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 1, 8, 8, generator=g), torch.randint(0, 3, (64,), generator=g)
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    return batches, batches

def callbacks():
    return {"evaluate": lambda model: 0.5, "finetune": lambda model, epochs: None}
'''


@pytest.fixture
def factories(tmp_path, monkeypatch):
    (tmp_path / "userfactories.py").write_text(FACTORIES)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_prune_a_torch_model_and_export_it(factories, capsys):
    code, out, err = run(capsys, "prune", "--model", "userfactories.py:make", "--data",
                         "userfactories.py:loaders", "--density", "0.3", "--epochs", "1",
                         "--out", "run")
    assert code == 0, err
    assert "your evaluation" in out and "weights kept" in out
    run_dir = factories / "run"
    assert {p.name for p in run_dir.iterdir()} >= {"model.pt", "model.onnx", "summary.json"}
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["weights_kept"] / summary["weights"] == pytest.approx(0.3, abs=0.01)
    state = torch.load(run_dir / "model.pt", weights_only=True)
    kept = sum(int((state[f"{n}.weight"] != 0).sum()) for n in ("conv1", "fc1", "fc2"))
    assert kept == summary["weights_kept"]
    # the exported ONNX file imports back with the module's MACs and parameters
    from hwprune.workload.factory import load_model
    user = load_model("userfactories.py:make")
    module, example = user.module, user.example_input
    torch_net, onnx_net = api.torch_network(module, example), api.network(run_dir / "model.onnx")
    assert (onnx_net.macs, onnx_net.params) == (torch_net.macs, torch_net.params)


def test_node_pruning_writes_a_compact_model_that_computes_the_same(factories, capsys):
    code, out, err = run(capsys, "prune", "--model", "userfactories.py:make", "--data",
                         "userfactories.py:loaders", "--granularity", "node", "--density", "0.5",
                         "--epochs", "1", "--out", "run", "--round-to", "4")
    assert code == 0, err
    from hwprune.workload.factory import load_model
    from hwprune.workload.torch_export import load_state_dict
    run_dir = factories / "run"
    small = load_state_dict(load_model("userfactories.py:make").module, run_dir / "model-compact.pt")
    masked = load_model("userfactories.py:make").module
    masked.load_state_dict(torch.load(run_dir / "model.pt", weights_only=True))
    assert small.fc1.out_features == 8 and small.conv1.out_channels % 4 == 0   # 16 -> 8; rounded
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(small(x), masked(x), rtol=1e-4, atol=1e-5)
    full, compact = api.network(run_dir / "model.onnx"), api.network(run_dir / "model-compact.onnx")
    assert compact.macs < full.macs and compact.params < full.params


def test_sensitivity_of_a_torch_model_with_callbacks(factories, capsys):
    code, out, err = run(capsys, "sensitivity", "--model", "userfactories.py:make", "--data",
                         "userfactories.py:callbacks", "--densities", "0.5", "--format", "csv")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith("layer,") and len(lines) == 1 + 3     # one row per layer


def test_sensitivity_of_a_torch_model_on_two_workers_equals_this_process(factories, capsys):
    """The workers import userfactories.py again and load the weights the study began with."""
    argv = ["sensitivity", "--model", "userfactories.py:make", "--data", "userfactories.py:loaders",
            "--densities", "0.5,0.2", "--format", "csv"]
    code, here, err = run(capsys, *argv)
    assert code == 0, err
    code, there, err = run(capsys, *argv, "--workers", "2")
    assert code == 0, err
    assert there == here and len(here.strip().splitlines()) == 1 + 3 * 2


def test_granularity_of_a_torch_model_from_the_simulators(factories, capsys):
    code, out, err = run(capsys, "granularity", "--model", "userfactories.py:make", "--device",
                         "cortex-m4", "--density", "0.2", "--format", "csv")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith("layer,") and [line.split(",")[0] for line in lines[1:]] == \
        ["conv1", "fc1", "fc2"]


def test_report_on_a_torch_model(factories, capsys, monkeypatch):
    """``report --model --data``: the user's model on the page, one progress step per
    planned step, the module left as it came in."""
    from hwprune.studies import energy_aware as EA
    from hwprune.studies import scalpel as S
    from hwprune.studies import tradeoff as T

    monkeypatch.setattr(S, "DENSITY_GRID", (0.5,))
    monkeypatch.setattr(S, "SEARCH_EPOCHS", 1)
    monkeypatch.setattr(T, "EPOCHS", 1)
    monkeypatch.setattr(T, "DENSITIES", (0.3,))
    monkeypatch.setattr(T, "TOLERANCES", (0.02,))
    monkeypatch.setattr(T, "BUDGETS", (0.02,))
    monkeypatch.setattr(EA, "DENSITY_GRID", (0.5,))
    code, out, err = run(capsys, "report", "--model", "userfactories.py:make", "--data",
                         "userfactories.py:loaders", "--devices", "cortex-m4", "--out", "rep")
    assert code == 0, err
    page = (factories / "rep" / "index.html").read_text()
    assert "your torch model Net" in page and "Reference models" not in page
    for name in ("Net-cortex-m4-energy.csv", "Net-cortex-m4-granularity.csv", "tradeoff.csv",
                 "tradeoff-cortex-m4.png"):
        assert (factories / "rep" / name).stat().st_size > 0
    points = __import__("pandas").read_csv(factories / "rep" / "tradeoff.csv")
    assert set(points["model"]) == {"Net"} and "energy-aware" in set(points["policy"])

    import hwprune

    seen = []
    user = api.user_model("userfactories.py:make")
    module, example = user.module, user.example_input
    before = {k: v.clone() for k, v in module.state_dict().items()}
    loaders = api.torch_data_args(api.user_data("userfactories.py:loaders"))["loaders"]
    api.report_study(["cortex-m4"], 0, seen.append, (), module, example_input=example, loaders=loaders)
    assert len(seen) == api.report_steps([hwprune.device("cortex-m4")], module, loaders=loaders)
    after = module.state_dict()
    for k, v in before.items():        # torch.nn.utils.prune keeps weight_orig and a full mask
        torch.testing.assert_close(after.get(k, after.get(k.replace(".weight", ".weight_orig")
                                                        .replace(".bias", ".bias_orig"))), v)
    assert all(bool(m.all()) for k, m in after.items() if k.endswith("_mask"))


@pytest.mark.parametrize("argv, phrase", [
    (["granularity", "model.onnx", "--device", "titan-x"], "give --density D"),
    (["tradeoff", "model.onnx"], "an .onnx file has no training"),
    (["prune", "--model", "userfactories.py:make", "--data", "userfactories.py:loaders",
      "--density", "0.5", "--round-to", "4", "--out", "r"], "node or filter"),
    (["tradeoff", "--model", "userfactories.py:make"], "needs --data"),
    (["report", "--model", "userfactories.py:make"], "needs --data"),
    (["report", "--data", "userfactories.py:loaders"], "--data needs --model"),
    (["granularity", "--model", "userfactories.py:make", "--device", "titan-x"], "needs --data"),
    (["prune", "model.onnx", "--density", "0.1"], "an .onnx file has no training"),
    (["sensitivity", "net.ONNX"], "an .onnx file has no training"),
    (["prune", "digits-mlp", "--model", "userfactories.py:make", "--density", "0.1"],
     "not both"),
    (["prune", "--model", "userfactories.py:make", "--density", "0.1"], "needs --data"),
    (["prune", "--data", "userfactories.py:loaders", "--density", "0.1"], "--data needs --model"),
    (["prune", "--density", "0.1"], "give MODEL"),
    (["prune", "--model", "userfactories.py:nope", "--data", "userfactories.py:loaders",
      "--density", "0.1"], "no attribute 'nope'"),
    (["prune", "--model", "userfactories.py:loaders", "--data", "userfactories.py:loaders",
      "--density", "0.1"], "accepted: a torch.nn.Module"),
])
def test_user_model_mistakes_are_one_line(factories, capsys, argv, phrase):
    code, _, err = run(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("hwprune: error:"), err
    assert phrase in lines[0]
