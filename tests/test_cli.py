"""The hwprune command: verbs, formats, --out, and one-line errors with exit 2."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import hwprune
from hwprune.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_show_alexnet_table(capsys):
    code, out, err = run(capsys, "show", "alexnet")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["layer", "kind", "inputs"]
    assert any(line.startswith("fc6") and "37,748,736" in line for line in lines)


@pytest.mark.parametrize("verb", [["devices"], ["networks"], ["show", "googlenet"],
                                  ["device", "core-i7"]])
def test_csv_and_json_match_the_api(capsys, verb):
    expected = {
        "devices": hwprune.devices, "networks": hwprune.networks,
        "show": lambda: hwprune.show(verb[-1]), "device": lambda: hwprune.device_detail(verb[-1]),
    }[verb[0]]()
    code, out, _ = run(capsys, *verb, "--format", "csv")
    assert code == 0
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(out), keep_default_na=False),
                                  expected.fillna(""), check_dtype=False)
    code, out, _ = run(capsys, *verb, "--format", "json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == len(expected)
    assert list(rows[0]) == list(expected.columns)
    for key, value in rows[0].items():
        if isinstance(expected[key].iloc[0], (int, float)) and not isinstance(value, str):
            assert value == pytest.approx(expected[key].iloc[0])


def test_json_numbers_are_numbers(capsys):
    _, out, _ = run(capsys, "networks", "--format", "json")
    rows = {r["network"]: r for r in json.loads(out)}
    assert rows["alexnet"]["params"] == 60_965_224
    assert isinstance(rows["vgg16"]["macs"], int)


def test_out_writes_the_file_and_leaves_no_temporary(capsys, tmp_path):
    target = tmp_path / "alexnet.csv"
    code, out, err = run(capsys, "show", "alexnet", "--format", "csv", "--out", str(target))
    assert code == 0 and out == "" and "wrote" in err
    assert pd.read_csv(target)["params"].sum() == 60_965_224
    assert sorted(os.listdir(tmp_path)) == ["alexnet.csv"]


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["show", "resnet1000"], "built-in networks: lenet-300-100"),
        (["show", "model.onnx"], "no such file"),
        (["show", "model.pt"], "reads .onnx files"),
        (["devices", "--profiles", "/no/such/dir"], "does not exist"),
        (["device", "pentium"], "known devices:"),
        (["device", "missing.toml"], "no such file"),
        (["show", "alexnet", "--format", "xml"], "choose from 'table', 'csv', 'json'"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
        (["show"], "required: NETWORK"),
        (["show", "alexnet", "--out", "/no/such/dir/x.csv"], "does not exist"),
        (["granularity", "digits-mlp", "--device", ","], "comma-separated list"),
        (["granularity", "lenet-5", "--device", "titan-x,titan-x", "--density", "0.1"],
         "'titan-x' twice"),
        (["granularity", "lenet-5", "--device", "titan-x", "--density", "0.1", "--workers", "2"],
         "simulated only"),
        (["granularity", "digits-mlp", "--device", "titan-x,pentium"], "known devices:"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("hwprune: error: ")
    assert needle in err
    assert "Traceback" not in err


def test_bad_profile_file_names_file_and_key(capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('id = "bad"\nname = "x"\nclass = "cpu"\nclock_hz = 0\n')
    code, _, err = run(capsys, "device", str(bad))
    assert code == 2 and str(bad) in err and "clock_hz" in err and "a number > 0" in err


def test_console_script_entry_point():
    # `python -m hwprune` runs the same main() the installed `hwprune` script runs.
    proc = subprocess.run([sys.executable, "-m", "hwprune", "show", "nope"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("hwprune: error: unknown network 'nope'")
    assert proc.stdout == ""


def test_energy_verb_table_csv_and_plot(capsys, tmp_path):
    code, out, err = run(capsys, "energy", "alexnet", "--device", "eyeriss")
    assert code == 0 and err == ""
    assert out.splitlines()[0].startswith("layer")
    assert out.splitlines()[-1].startswith("total ")
    plot = tmp_path / "e.png"
    csv = tmp_path / "e.csv"
    code, out, err = run(capsys, "energy", "alexnet", "--device", "core-i7", "--format", "csv",
                         "--out", str(csv), "--plot", str(plot), "--batch", "2")
    assert code == 0 and out == ""
    df = pd.read_csv(csv)
    pd.testing.assert_frame_equal(df, hwprune.energy("alexnet", "core-i7", batch=2),
                                  check_dtype=False)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.csv", "e.png"]


def test_energy_verb_densities_and_detail(capsys, tmp_path):
    dens = tmp_path / "d.csv"
    dens.write_text("layer,weight_density,act_density\nfc6,0.1,0.5\n")
    code, out, _ = run(capsys, "energy", "alexnet", "--device", "eyeriss", "--densities",
                       str(dens), "--weight-format", "csr", "--format", "json")
    rows = {r["layer"]: r for r in json.loads(out)}
    assert code == 0 and rows["fc6"]["weight_density"] == 0.1 and rows["fc6"]["index_pj"] > 0
    code, out, _ = run(capsys, "energy", "lenet-5", "--device", "titan-x", "--detail",
                       "--format", "csv")
    detail = pd.read_csv(io.StringIO(out))
    assert code == 0 and set(detail["operand"]) == {"weights", "inputs", "outputs"}
    total = hwprune.energy("lenet-5", "titan-x")
    assert detail["energy_pj"].sum() + total["compute_pj"].sum() == pytest.approx(
        total["energy_pj"].sum(), rel=1e-12)


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["energy", "alexnet"], "required: --device"),
        (["energy", "alexnet", "--device", "eyeriss", "--batch", "two"], "--batch"),
        (["energy", "alexnet", "--device", "eyeriss", "--dataflow", "diagonal"], "invalid choice"),
        (["energy", "alexnet", "--device", "core-i7", "--dataflow", "row-stationary"],
         "needs a 2-D PE array"),
        (["energy", "alexnet", "--device", "eyeriss", "--densities", "/no/such.csv"],
         "no such file"),
        (["energy", "alexnet", "--device", "eyeriss", "--plot", "out.gif"], ".png, .svg, .pdf"),
        (["energy", "alexnet", "--device", "eyeriss", "--plot", "/no/dir/e.png"],
         "does not exist"),
    ],
)
def test_energy_bad_input_is_one_line_and_exit_2(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("hwprune: error: ") and needle in err


def test_energy_bad_densities_row_is_named(capsys, tmp_path):
    dens = tmp_path / "d.csv"
    dens.write_text("layer,weight_density,act_density\nconv1,0.5,0.5\nfc6,1.7,1\n")
    code, _, err = run(capsys, "energy", "alexnet", "--device", "eyeriss", "--densities", str(dens))
    assert code == 2 and "line 3 ('fc6'): weight_density must be a fraction in (0, 1], got '1.7'" in err


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["energy", "alexnet", "--device", "eyeriss", "--batch", "99999999999"],
         "an integer from 1 to 65536"),
        (["energy", "alexnet", "--device", "eyeriss", "--detail", "--plot", "x.png"],
         "leave out --detail"),
        (["show", "alexnet", "--out", "/proc/x.csv"], "cannot write"),
        (["cachesim", "alexnet", "--layer", "fc6", "--device", "core-i7", "--scheme", "csr",
          "--density", "0.1", "--seed", "-1"], "integer >= 0"),
        (["cachesim", "alexnet", "--layer", "fc6", "--device", "core-i7", "--scheme", "csr",
          "--density", "1_0"], "must be a fraction in (0, 1]"),
        (["bench", "kernels", "--shapes", ""], "comma-separated list"),
    ],
)
def test_review_regressions_are_one_line_errors(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and needle in err


def test_out_to_a_directory_and_file_mode(capsys, tmp_path):
    code, _, err = run(capsys, "show", "lenet-5", "--out", str(tmp_path) + "/")
    assert code == 2 and "is a directory" in err
    target = tmp_path / "t.csv"
    old = os.umask(0o022)
    try:
        assert run(capsys, "show", "lenet-5", "--format", "csv", "--out", str(target))[0] == 0
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o644


def test_failed_plot_leaves_no_table(capsys, tmp_path):
    (tmp_path / "dir.png").mkdir()
    out_csv = tmp_path / "e.csv"
    code, out, err = run(capsys, "energy", "lenet-5", "--device", "eyeriss", "--out",
                         str(out_csv), "--plot", str(tmp_path / "dir.png"))
    assert code == 2 and not out_csv.exists() and "is a directory" in err


def test_trace_file_errors(capsys, tmp_path):
    npz = tmp_path / "t.npz"
    np.savez(npz, a=np.arange(4))
    floats = tmp_path / "f.npy"
    np.save(floats, np.arange(4, dtype=np.float64))
    for path, needle in ((npz, "several arrays"), (floats, "dtype float64")):
        code, _, err = run(capsys, "cachesim", "--trace", str(path), "--device", "core-i7")
        assert code == 2 and needle in err


def test_profiles_directory_named_twice_is_read_once(capsys, tmp_path):
    from test_profiles import MINIMAL

    (tmp_path / "toy.toml").write_text(MINIMAL)
    code, out, _ = run(capsys, "devices", "--profiles", str(tmp_path), "--profiles",
                       str(tmp_path), "--format", "csv")
    assert code == 0 and out.count("\ntoy,") == 1


def test_densities_csv_with_a_spreadsheet_bom(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("\ufefflayer,weight_density\nconv2,0.5\n", encoding="utf-8")
    df = hwprune.energy("lenet-5", "eyeriss", densities=str(path)).set_index("layer")
    assert df.loc["conv2", "weight_density"] == 0.5


def test_index_bits_and_unmappable_profiles_are_input_errors(capsys, tmp_path):
    from test_profiles import MINIMAL

    big = tmp_path / "big.toml"
    big.write_text(MINIMAL.replace("[compute]", "[sparsity]\nindex_bits = 2000\n[compute]"))
    code, _, err = run(capsys, "device", str(big))
    assert code == 2 and "from 1 to 64" in err
    tiny = tmp_path / "tiny.toml"
    # L1 of 16 bytes cannot hold one 8-byte element of each of the three operands
    tiny.write_text(MINIMAL.replace("size_bytes = 4096", "size_bytes = 16")
                    .replace("line_bytes = 32\nword_bytes = 4\nassociativity = 4",
                             "line_bytes = 16\nword_bytes = 4\nassociativity = 1")
                    .replace("simd_element_bits = 16", "simd_element_bits = 64"))
    code, _, err = run(capsys, "energy", "lenet-5", "--device", str(tiny))
    assert code == 2 and "no legal mapping" in err
