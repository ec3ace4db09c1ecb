"""Bad and odd output locations, signals, CSV and plot text, and the numba cache
(issue 18, outputs part): one table of command lines, each with the exit status, a
phrase of the one stderr line, and the files that must (not) exist afterwards; then the
cases a table cannot hold (signals, a full disk, a read-only install)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest

import hwprune
from hwprune.cli import main
from hwprune.report.output import MARKER, csv_cell, render

ROOT = os.geteuid() == 0
LONG = "x" * 300                       # one name over NAME_MAX (255): ENAMETOOLONG
DENSITIES = "layer,weight_density,act_density\nconv1,0.5,1\n"


def _immutable(path: Path, on: bool) -> bool:
    """chattr +i / -i: stops even root from creating files in ``path``."""
    if shutil.which("chattr") is None:
        return False
    return subprocess.run(["chattr", "+i" if on else "-i", str(path)],
                          capture_output=True).returncode == 0


@pytest.fixture
def read_only(tmp_path):
    """A directory nothing can be created in (mode 0555, and immutable when root)."""
    made: list[Path] = []

    def make(name: str) -> Path:
        d = tmp_path / name
        d.mkdir()
        d.chmod(0o555)
        if ROOT and not _immutable(d, True):
            pytest.skip("running as root without chattr +i: a read-only directory is writable")
        made.append(d)
        return d
    yield make
    for d in made:
        if ROOT:
            _immutable(d, False)
        d.chmod(0o755)


def _no_search(tmp_path: Path) -> None:
    if ROOT:
        pytest.skip("root can search any directory")
    d = tmp_path / "nosearch"
    d.mkdir()
    d.chmod(0o600)


def _notes(tmp_path: Path, name: str = "mine") -> None:
    (tmp_path / name).mkdir()
    (tmp_path / name / "notes.txt").write_text("keep me")


def _marked(tmp_path: Path, name: str = "old") -> None:
    (tmp_path / name).mkdir()
    (tmp_path / name / MARKER).write_text(json.dumps({"written_by": "hwprune", "description": "prune",
                                                      "files": ["summary.json"]}))
    (tmp_path / name / "summary.json").write_text("{}")


@dataclass
class Case:
    id: str
    argv: list[str]                              # "{tmp}" is replaced by tmp_path
    code: int
    phrase: str                                  # in the one stderr line (or in stderr)
    files: set[str] | None = field(default=None)  # every path under tmp_path afterwards
    setup: Callable | None = None
    fixture: str | None = None                   # "read_only": make tmp/ro read-only


CASES = [
    # 1. OS errors on output paths: one line, exit 2, checked before any work
    Case("long --out", ["networks", "--out", "{tmp}/" + LONG + ".csv"], 2, "File name too long",
         set()),
    Case("long --plot", ["energy", "lenet-5", "--device", "core-i7", "--plot",
                         "{tmp}/" + LONG + ".png"], 2, "File name too long", set()),
    Case("long prune --out", ["prune", "digits-mlp", "--density", "0.5", "--out",
                              "{tmp}/" + LONG], 2, "File name too long", set()),
    Case("long tradeoff --out", ["tradeoff", "digits-mlp", "--out", "{tmp}/" + LONG], 2,
         "File name too long", set()),
    Case("long report --out", ["report", "--out", "{tmp}/sub/" + LONG], 2,
         "File name too long", set()),
    Case("long calibrate --out", ["calibrate", "--out", "{tmp}/" + LONG], 2,
         "File name too long", set()),
    Case("no search permission", ["networks", "--out", "{tmp}/nosearch/x.csv"], 2,
         "cannot write", {"nosearch"}, setup=_no_search),
    Case("read-only parent, file", ["networks", "--out", "{tmp}/ro/x.csv"], 2, "not writable",
         {"ro"}, fixture="read_only"),
    Case("read-only parent, prune DIR", ["prune", "digits-mlp", "--density", "0.5", "--out",
                                         "{tmp}/ro/new"], 2, "not writable", {"ro"},
         fixture="read_only"),
    Case("read-only parent, tradeoff DIR", ["tradeoff", "digits-mlp", "--out", "{tmp}/ro/a/b"],
         2, "not writable", {"ro"}, fixture="read_only"),
    Case("read-only report DIR", ["report", "--out", "{tmp}/ro"], 2, "not writable", {"ro"},
         fixture="read_only"),
    Case("path through a file", ["networks", "--out", "{tmp}/f.txt/x.csv"], 2, "f.txt",
         {"f.txt"}, setup=lambda t: (t / "f.txt").write_text("")),
    Case("prune --out is a file", ["prune", "digits-mlp", "--density", "0.5", "--out",
                                   "{tmp}/f.txt"], 2, "not a directory", {"f.txt"},
         setup=lambda t: (t / "f.txt").write_text("")),
    Case("empty --out", ["networks", "--out", ""], 2, "give a file name", set()),
    Case("empty prune --out", ["prune", "digits-mlp", "--density", "0.5", "--out", ""], 2,
         "give a directory name", set()),
    # 2. devices, FIFOs, standard output, symbolic links
    Case("--out /dev/null", ["networks", "--out", "/dev/null"], 0, "wrote /dev/null", set()),
    Case("--out -", ["networks", "--format", "csv", "--out", "-"], 0, "", set()),
    Case("--out a symlink", ["networks", "--format", "csv", "--out", "{tmp}/link.csv"], 0,
         "wrote", {"link.csv", "target.csv"},
         setup=lambda t: (t / "link.csv").symlink_to("target.csv")),
    # 3. stale temporary files of hwprune's pattern (a dead process's) are removed
    Case("stale temp file", ["networks", "--out", "{tmp}/n.csv"], 0, "wrote", {"n.csv"},
         setup=lambda t: (t / ".n.csv.hwprune-999999999-abcdefgh.tmp").write_text("old")),
    Case("stale temp dir counts as empty", ["prune", "digits-mlp", "--density", "0.5",
                                            "--epochs", "0", "--out", "{tmp}/p"], 0, "wrote",
         {"p", "p/.hwprune", "p/weights.npz", "p/summary.json"},
         setup=lambda t: (t / "p" / ".p.hwprune-999999999-abcdefgh.tmp").mkdir(parents=True)),
    # 5. a non-empty directory hwprune did not make is refused unless --force
    Case("prune into someone's dir", ["prune", "digits-mlp", "--density", "0.5", "--out",
                                      "{tmp}/mine"], 2, "not made by hwprune",
         {"mine", "mine/notes.txt"}, setup=_notes),
    Case("tradeoff into someone's dir", ["tradeoff", "digits-mlp", "--out", "{tmp}/mine"], 2,
         "--force", {"mine", "mine/notes.txt"}, setup=_notes),
    Case("report into someone's dir", ["report", "--out", "{tmp}/mine"], 2,
         "not made by hwprune", {"mine", "mine/notes.txt"}, setup=_notes),
    Case("prune --force", ["prune", "digits-mlp", "--density", "0.5", "--epochs", "0", "--out",
                           "{tmp}/mine", "--force"], 0, "wrote",
         {"mine", "mine/notes.txt", "mine/.hwprune", "mine/weights.npz", "mine/summary.json"},
         setup=_notes),
    Case("prune into hwprune's dir", ["prune", "digits-mlp", "--density", "0.5", "--epochs", "0",
                                      "--out", "{tmp}/old"], 0, "wrote",
         {"old", "old/.hwprune", "old/weights.npz", "old/summary.json"}, setup=_marked),
    # 8. densities
    Case("sensitivity --densities ''", ["sensitivity", "digits-mlp", "--densities", ""], 2,
         "needs a comma-separated list", set()),
    Case("sensitivity --densities ' , '", ["sensitivity", "digits-mlp", "--densities", " , "], 2,
         "needs a comma-separated list", set()),
    Case("dense-format note", ["energy", "lenet-5", "--device", "core-i7", "--densities",
                               "{tmp}/d.csv", "--format", "csv"], 0,
         "--weight-format csr|simd-group|rle", {"d.csv"},
         setup=lambda t: (t / "d.csv").write_text(DENSITIES)),
    Case("no note with a sparse format", ["energy", "lenet-5", "--device", "core-i7",
                                          "--densities", "{tmp}/d.csv", "--weight-format",
                                          "csr", "--format", "csv"], 0, "", {"d.csv"},
         setup=lambda t: (t / "d.csv").write_text(DENSITIES)),
]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_and_odd_outputs(case, tmp_path, capsys, request, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if case.setup:
        case.setup(tmp_path)
    if case.fixture == "read_only":
        request.getfixturevalue("read_only")("ro")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in case.argv]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == case.code, err
    if case.code == 2:
        assert out == "" and err.count("\n") == 1 and err.startswith("hwprune: error:"), err
    assert case.phrase in err
    if case.id == "no note with a sparse format":
        assert "note:" not in err
    if case.files is not None:
        assert _tree(tmp_path) == case.files
    if case.id == "--out /dev/null":
        assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    if case.id == "--out -":
        assert out.startswith("network,")
    if case.id == "--out a symlink":
        assert (tmp_path / "link.csv").is_symlink()
        assert (tmp_path / "target.csv").read_text().startswith("network,")
    if case.id == "prune --force":
        assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_fifo_is_written_through(tmp_path, capsys):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    assert main(["networks", "--format", "csv", "--out", str(fifo)]) == 0
    reader.join(10)
    assert got and got[0].startswith("network,")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_live_process_temp_file_is_kept(tmp_path, capsys):
    live = tmp_path / f".n.csv.hwprune-{os.getppid()}-abcdefgh.tmp"
    live.write_text("someone else's write in progress")
    assert main(["networks", "--out", str(tmp_path / "n.csv")]) == 0
    assert live.exists()


# ------------------------------------------------------------------------ signals

SLOW_RENAME = textwrap.dedent("""
    import os, sys, time
    real = os.replace
    def slow(a, b):
        sys.stderr.write("READY\\n"); sys.stderr.flush(); time.sleep(60); real(a, b)
    os.replace = slow                  # hold every write between its write and its rename
    from hwprune.cli import main
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
@pytest.mark.parametrize("argv", [["networks", "--out", "n.csv"],
                                  ["prune", "digits-mlp", "--density", "0.5", "--epochs", "0",
                                   "--out", "pruned"]], ids=["file", "directory"])
def test_signal_between_write_and_rename_leaves_nothing(tmp_path, signum, argv):
    script = tmp_path.parent / f"slow_rename_{tmp_path.name}.py"
    script.write_text(SLOW_RENAME)
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.Popen([sys.executable, str(script), *argv], cwd=work, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for line in proc.stderr:
            if "READY" in line:
                break
        assert list(work.rglob("*.tmp")), "the write should be in progress"
        proc.send_signal(signum)
        code = proc.wait(30)
        rest = proc.stderr.read()
    finally:
        proc.kill()
        script.unlink()
    assert code == 128 + signum
    assert f"terminated by {signal.Signals(signum).name}" in rest
    assert list(work.iterdir()) == []


# ------------------------------------------------------------ directories as a set

def test_prune_failure_keeps_the_old_set(tmp_path, capsys, monkeypatch):
    out = tmp_path / "p"
    assert main(["prune", "digits-mlp", "--density", "0.5", "--epochs", "0", "--out",
                 str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    import hwprune.cli as cli

    real = cli.write_atomic

    def disk_full(path, data):
        if Path(path).name == "summary.json":
            raise hwprune.InputError(f"cannot write {path}: No space left on device")
        real(path, data)
    monkeypatch.setattr(cli, "write_atomic", disk_full)
    assert main(["prune", "digits-mlp", "--density", "0.3", "--epochs", "0", "--out",
                 str(out)]) == 2
    assert "No space left" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["p"]


def _points():
    rows = []
    for policy, e, acc in (("=cmd|' /C calc'!A0", 1e6, 0.9), ("magnitude", 2e6, -0.5)):
        rows.append({"model": "m", "policy": policy, "device": "dev", "energy": e,
                     "latency_s": 1e-3, "accuracy": acc, "energy_unit": "pJ"})
    points = pd.DataFrame(rows)
    points["pareto_energy"] = True
    points["pareto_latency"] = True
    return points


def test_write_tradeoff_is_a_set_and_csv_is_escaped(tmp_path, monkeypatch):
    from hwprune.report import tradeoff_files

    points, versus = _points(), pd.DataFrame({"device": ["@dev"], "speedup": [-2.0]})
    written = tradeoff_files.write_tradeoff(tmp_path / "t", points, versus, ["dev"])
    assert {p.name for p in written} == {"tradeoff.csv", "scalpel-vs-traditional.csv",
                                         "tradeoff-dev.png"}
    csv = pd.read_csv(tmp_path / "t" / "tradeoff.csv")
    assert csv["policy"].tolist() == ["'=cmd|' /C calc'!A0", "magnitude"]
    assert csv["accuracy"].tolist() == [0.9, -0.5]            # numbers stay numbers
    versus_csv = pd.read_csv(tmp_path / "t" / "scalpel-vs-traditional.csv")
    assert versus_csv.iloc[0].tolist() == ["'@dev", -2.0]
    old = (tmp_path / "t" / "tradeoff.csv").read_bytes()

    def broken_plot(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(tradeoff_files, "plot_tradeoff", broken_plot)
    with pytest.raises(OSError):
        tradeoff_files.write_tradeoff(tmp_path / "t", points.assign(energy=5.0), versus, ["dev"])
    assert (tmp_path / "t" / "tradeoff.csv").read_bytes() == old
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == [
        ".hwprune", "scalpel-vs-traditional.csv", "tradeoff-dev.png", "tradeoff.csv"]
    with pytest.raises(hwprune.InputError, match="not made by hwprune"):
        (tmp_path / "u").mkdir()
        (tmp_path / "u" / "x").write_text("")
        tradeoff_files.write_tradeoff(tmp_path / "u", points, versus, ["dev"])


@pytest.mark.parametrize("value, expected", [
    ("=1+1", "'=1+1"), ("+x", "'+x"), ("-x", "'-x"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"), ("\rx", "'\rx"), ("conv1", "conv1"), ("-0.5", "-0.5"), (-3, -3),
    (-2.5, -2.5),
])
def test_csv_cell(value, expected):
    assert csv_cell(value) == expected


def test_render_csv_escapes_text_not_numbers():
    df = pd.DataFrame({"layer": ["=cmd|' /C calc'!A0", "fc"], "delta": [-1.5, 2.0],
                       "=h": [1, 2]})
    text = render(df, "csv")
    assert text.splitlines() == ["layer,delta,'=h", "'=cmd|' /C calc'!A0,-1.5,1", "fc,2.0,2"]


# ------------------------------------------------------------------ plot text

def _dollar_network():
    from hwprune.workload.builder import NetworkBuilder

    b = NetworkBuilder("net$x$", (1, 8, 8))
    x = b.conv("a$b$c", b.input, 4, 3)
    x = b.flatten("flat", x)
    b.fc("bad$\\frac$", x, 10)
    return b.build()


def test_names_with_dollars_are_drawn_literally(tmp_path, monkeypatch):
    from hwprune import api
    from hwprune.report import plots

    net, dev = _dollar_network(), hwprune.device("core-i7")
    figures = []
    real_save = plots.save_figure

    def keep(fig, path):
        texts = [t for ax in fig.axes for t in ax.get_xticklabels() + [ax.title]]
        figures.append({t.get_text(): t.get_parse_math() for t in texts if t.get_text()})
        real_save(fig, path)
    monkeypatch.setattr(plots, "save_figure", keep)
    df = hwprune.energy(net, dev)
    plots.plot_energy(df, api.level_columns(dev), f"{net.name} on {dev.id}", dev.energy_unit,
                      tmp_path / "e.png")
    plots.plot_breakeven(api.latency_curves(net, dev, ("fine",)), net.name, tmp_path / "b.png")
    table = pd.DataFrame({"layer": ["a$b$c", "a$b$c"], "density": [0.5, 0.2],
                          "accuracy": [0.9, 0.8]})
    plots.plot_sensitivity(table, "x$\\y$", tmp_path / "s.png")
    assert (tmp_path / "e.png").stat().st_size and (tmp_path / "b.png").stat().st_size
    assert "a$b$c" in figures[0] and "bad$\\frac$" in figures[0]
    assert "a$b$c" in figures[1]
    assert not any(parse for fig in figures for parse in fig.values())


def test_dollar_layer_through_the_cli(tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((8, 4), dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="a$b$c")], "g$\\frac$",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w])
    path = tmp_path / "m$x$.onnx"
    onnx.save(helper.make_model(graph), str(path))
    code = main(["energy", str(path), "--device", "core-i7", "--plot", str(tmp_path / "e.png"),
                 "--format", "csv", "--out", str(tmp_path / "e.csv")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert (tmp_path / "e.png").stat().st_size > 0
    assert "a$b$c" in (tmp_path / "e.csv").read_text()


# ---------------------------------------------------------- read-only install

def test_read_only_install_caches_numba_elsewhere(tmp_path):
    repo = Path(hwprune.__file__).resolve().parents[1]
    site = tmp_path / "site"
    shutil.copytree(repo / "hwprune", site / "hwprune",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(repo / "hardware_profiles", site / "hwprune" / "hardware_profiles")
    dirs = [d for d in site.rglob("*") if d.is_dir()] + [site]
    for d in dirs:
        d.chmod(0o555)
    immutable = []
    try:
        if ROOT:
            for d in dirs:
                if not _immutable(d, True):
                    pytest.skip("running as root without chattr +i: cannot make a read-only "
                                "install")
                immutable.append(d)
        env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
        env.update(PYTHONPATH=str(site), XDG_CACHE_HOME=str(tmp_path / "cache"),
                   PYTHONDONTWRITEBYTECODE="1")
        code = ("import hwprune; print(hwprune.__file__); print(hwprune.NUMBA_CACHE_DIR); "
                "hwprune.energy('lenet-300-100', 'core-i7'); "
                "from hwprune.sparse import kernels; import numpy as np; "
                "kernels.dense_matvec(np.ones((2, 2), np.float32), np.ones(2, np.float32), "
                "np.zeros(2, np.float32))")
        proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
    finally:
        for d in immutable:
            _immutable(d, False)
        for d in dirs:
            d.chmod(0o755)
    assert proc.returncode == 0, proc.stderr
    where, cache = proc.stdout.splitlines()[:2]
    assert where.startswith(str(site))
    assert cache == str(tmp_path / "cache" / "hwprune" / "numba")
    assert list((tmp_path / "cache" / "hwprune" / "numba").rglob("*.nbi"))
    assert not [p for p in site.rglob("*") if p.suffix in (".nbi", ".nbc", ".pyc")]


def test_writable_install_keeps_numba_default():
    if os.environ.get("NUMBA_CACHE_DIR"):
        pytest.skip("NUMBA_CACHE_DIR is set")
    assert hwprune.NUMBA_CACHE_DIR is None


def test_another_verbs_directory_is_not_mixed_into_or_emptied(tmp_path, capsys):
    from hwprune.report.output import OutputDirectory, write_atomic

    out = tmp_path / "rep"
    with OutputDirectory(out, False, "report") as stage:
        write_atomic(stage / "index.html", "<html></html>")
    code = main(["prune", "digits-mlp", "--density", "0.5", "--epochs", "0", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "hwprune report" in err[0] and "--force" in err[0]
    assert (out / "index.html").exists()
    with OutputDirectory(out, True, "prune") as stage:          # --force: written beside
        write_atomic(stage / "summary.json", "{}")
    assert (out / "index.html").exists() and (out / "summary.json").exists()
    with OutputDirectory(out, False, "prune") as stage:         # the same verb again
        write_atomic(stage / "weights.npz", b"")
    assert not (out / "summary.json").exists()                  # its own stale file goes
    assert (out / "index.html").exists()                        # another verb's file stays
