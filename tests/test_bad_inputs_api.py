"""Bad inputs to the Python API, densities and trace files (issue 18), as a table.

Each case is a call (API, or ``hwprune.cli.main`` argv with files in tmp_path) and
the phrase its :class:`InputError` (or its one ``hwprune: error:`` line, exit 2)
must hold; the good cases give the expected output. Nothing here trains a model:
every bad argument is refused before any work starts.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwprune import api
from hwprune.cli import main
from hwprune.cost.densities import Density, parse_densities
from hwprune.errors import InputError

NET = "lenet-300-100"


def _net():
    return api.network(NET)


def _dev():
    return api.device("eyeriss")


def _npy(tmp_path, name, array=None, raw=None):
    path = tmp_path / name
    if raw is not None:
        path.write_bytes(raw)
    else:
        np.save(path, array)
    return str(path)


def _huge_header(tmp_path):
    header = "{'descr': '<i8', 'fortran_order': False, 'shape': (1000000000000,), }"
    header = header.ljust(117) + "\n"
    raw = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()
    return _npy(tmp_path, "huge.npy", raw=raw + bytes(64))


# (id, call taking tmp_path, phrase of the InputError)
API_CASES = [
    # swapped and wrongly typed networks and devices
    ("energy swapped", lambda p: api.energy(_dev(), _net()), "network and device swapped"),
    ("energy net as device", lambda p: api.energy(_net(), _net()),
     "device must be a device id, a .toml profile path or a DeviceProfile"),
    ("evaluate swapped", lambda p: api.evaluate(_dev(), _net()), "network and device swapped"),
    ("latency swapped", lambda p: api.latency(_dev(), _net()), "network and device swapped"),
    ("breakeven swapped", lambda p: api.breakeven(_dev(), _net()), "swapped"),
    ("recommend swapped", lambda p: api.recommend(_dev(), _net(), 0.5), "swapped"),
    ("energy_detail swapped", lambda p: api.energy_detail(_dev(), _net()), "swapped"),
    ("network int", lambda p: api.network(123), "network must be a built-in network name"),
    ("network None", lambda p: api.network(None), "got None (NoneType)"),
    ("network 300 chars", lambda p: api.network("x" * 300), "File name too long"),
    ("device int", lambda p: api.device(123), "device must be a device id"),
    ("device network", lambda p: api.device(_net()), "got the network 'lenet-300-100'"),
    # lists of paths and devices
    ("profiles int", lambda p: api.energy(NET, "eyeriss", profiles=123),
     "profiles must be a list of directory paths, got 123 (int)"),
    ("profiles list of int", lambda p: api.devices(profiles=[1]), "profiles entries must be paths"),
    ("tradeoff devices int", lambda p: api.tradeoff("digits-mlp", 5), "devices must be a list"),
    ("tradeoff no devices", lambda p: api.tradeoff("digits-mlp", []), "got none"),
    ("report devices int", lambda p: api.report_study(123), "devices must be a list"),
    # numbers
    ("batch True", lambda p: api.energy(NET, "eyeriss", batch=True), "batch must be an integer"),
    ("batch 1.5", lambda p: api.evaluate(NET, "eyeriss", batch=1.5), "batch must be an integer"),
    ("prune epochs 1.5", lambda p: api.prune("digits-mlp", epochs=1.5),
     "epochs must be an integer >= 0, got 1.5"),
    ("prune seed -1", lambda p: api.prune("digits-mlp", seed=-1), "seed must be an integer >= 0"),
    ("sensitivity seed", lambda p: api.sensitivity("digits-mlp", seed=-1), "seed must be"),
    ("sensitivity no densities", lambda p: api.sensitivity("digits-mlp", densities=[]),
     "densities must be one or more fractions in (0, 1], got none"),
    ("sensitivity density 2", lambda p: api.sensitivity("digits-mlp", densities=[0.5, 2]),
     "densities must be a fraction in (0, 1], got 2"),
    ("granularity tolerance", lambda p: api.granularity("digits-mlp", "core-i7", tolerance=True),
     "tolerance must be a fraction in [0, 1)"),
    ("granularity seed", lambda p: api.granularity("digits-mlp", "core-i7", seed=1.5), "seed"),
    ("granularity progress", lambda p: api.granularity("digits-mlp", "core-i7", progress=3),
     "progress must be a function or None"),
    ("tradeoff seed", lambda p: api.tradeoff("digits-mlp", ["core-i7"], seed=-2), "seed"),
    ("report seed True", lambda p: api.report_study(["core-i7"], seed=True), "seed must be"),
    ("report torch args without a model", lambda p: api.report_study(["core-i7"], loaders=([], [])),
     "apply to a torch model given as model="),
    ("latency density True", lambda p: api.latency(NET, "core-i7", "fine", True),
     "density must be a fraction in (0, 1], got True"),
    ("recommend density None", lambda p: api.recommend(NET, "core-i7", None), "density must be"),
    ("cachesim seed", lambda p: api.cachesim_layer(NET, "ip1", "core-i7", "fine", 0.5, seed=-1),
     "seed must be"),
    # names
    ("latency scheme int", lambda p: api.latency(NET, "core-i7", scheme=123),
     "scheme must be a name (text), got 123 (int); accepted: dense, fine"),
    ("breakeven schemes int", lambda p: api.breakeven(NET, "core-i7", schemes=5),
     "schemes must be a list of scheme names"),
    ("breakeven no schemes", lambda p: api.breakeven(NET, "core-i7", schemes=[]), "got none"),
    ("energy dataflow int", lambda p: api.energy(NET, "eyeriss", dataflow=1),
     "dataflow must be a name (text)"),
    ("energy weight format", lambda p: api.energy(NET, "eyeriss", weight_format=b"csr"),
     "weight format must be a name (text)"),
    ("prune model int", lambda p: api.prune(5), "model must be a name (text)"),
    ("prune granularity int", lambda p: api.prune("digits-mlp", granularity=5),
     "granularity must be a name (text)"),
    ("prune criterion", lambda p: api.prune("digits-mlp", criterion=None),
     "criterion must be a name"),
    ("prune schedule", lambda p: api.prune("digits-mlp", schedule=1), "schedule must be a name"),
    ("prune group", lambda p: api.prune("digits-mlp", granularity="simd", group=1.5),
     "group width must be an integer"),
    ("tradeoff model", lambda p: api.tradeoff(None, ["core-i7"]), "model must be a name"),
    ("cachesim trace None", lambda p: api.cachesim_trace(None, "core-i7"),
     "trace must be the path of a .npy file"),
    # densities, every form
    ("Series duplicate", lambda p: api.energy(NET, _dev(), pd.Series([0.5, 0.4], ["ip1", "ip1"])),
     "densities entry 2: layer 'ip1' named twice"),
    ("DataFrame NaN", lambda p: api.energy(NET, _dev(), pd.DataFrame(
        {"layer": ["ip1"], "weight_density": [float("nan")]})),
     "densities row 1 ('ip1'): weight_density must be a fraction in (0, 1], got nan"),
    ("dict True", lambda p: api.energy(NET, _dev(), {"ip1": True}), "got True"),
    ("dict pd.NA", lambda p: api.energy(NET, _dev(), {"ip1": pd.NA}), "got <NA>"),
    ("Series pd.NA", lambda p: api.energy(NET, _dev(), pd.Series({"ip1": pd.NA})), "got <NA>"),
    ("DataFrame NA act", lambda p: api.energy(NET, _dev(), pd.DataFrame(
        {"layer": ["ip1"], "act_density": pd.array([pd.NA], "Float64")})), "act_density"),
    ("DataFrame column twice", lambda p: api.energy(NET, _dev(), pd.DataFrame(
        [["ip1", 0.5, 0.5]], columns=["layer", "weight_density", "weight_density"])),
     "column 'weight_density' given twice"),
    ("CSV directory", lambda p: api.energy(NET, _dev(), p), "a directory"),
    ("CSV 300 chars", lambda p: api.energy(NET, _dev(), "d" * 300 + ".csv"), "File name too long"),
    # trace files
    ("trace empty", lambda p: api.cachesim_trace(_npy(p, "e.npy", raw=b""), "core-i7"),
     "the file is empty"),
    ("trace 10^12", lambda p: api.cachesim_trace(_huge_header(p), "core-i7"),
     "the header says shape (1000000000000,)"),
    ("trace uint64 2^63", lambda p: api.cachesim_trace(
        _npy(p, "u.npy", np.array([0, 2**63 + 1], np.uint64)), "core-i7"),
     "access 1 has address 9223372036854775809; that is too large"),
    ("trace 2^40 bytes", lambda p: api.cachesim_trace(
        _npy(p, "s.npy", np.array([[0, 2**40, 0]])), "core-i7"),
     "one access may span at most 4096 bytes"),
    ("trace negative", lambda p: api.cachesim_trace(_npy(p, "n.npy", np.array([-4])), "core-i7"),
     "addresses must be >= 0"),
    ("trace float", lambda p: api.cachesim_trace(_npy(p, "f.npy", np.array([1.0])), "core-i7"),
     "dtype float64 is not accepted"),
    ("trace shape", lambda p: api.cachesim_trace(
        _npy(p, "sh.npy", np.zeros((4, 2), np.int64)), "core-i7"), "shape (4, 2) is not accepted"),
    ("trace is_write 2", lambda p: api.cachesim_trace(
        _npy(p, "w.npy", np.array([[0, 4, 2]])), "core-i7"), "is_write"),
    ("trace end", lambda p: api.cachesim_trace(
        _npy(p, "end.npy", np.array([[2**48 - 2, 4, 0]])), "core-i7"), "ends must be at most"),
    ("trace text", lambda p: api.cachesim_trace(_npy(p, "t.npy", raw=b"0 4 8\n"), "core-i7"),
     "not a numpy .npy array"),
    ("trace directory", lambda p: api.cachesim_trace(p, "core-i7"), "is a directory"),
    ("trace 300 chars", lambda p: api.cachesim_trace("t" * 300 + ".npy", "core-i7"),
     "File name too long"),
]


@pytest.mark.parametrize("call, phrase", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_bad_api_input_is_an_input_error(tmp_path, call, phrase):
    with pytest.raises(InputError) as info:
        call(tmp_path)
    assert phrase in str(info.value)
    assert "\n" not in str(info.value)


CLI_CASES = [
    ("trace empty", lambda p: ["cachesim", "--trace", _npy(p, "e.npy", raw=b""),
                               "--device", "core-i7"], "the file is empty"),
    ("trace 10^12", lambda p: ["cachesim", "--trace", _huge_header(p), "--device", "core-i7"],
     "the header says shape"),
    ("trace 2^40", lambda p: ["cachesim", "--trace", _npy(p, "s.npy", np.array([[0, 2**40, 1]])),
                              "--device", "core-i7"], "at most 4096 bytes"),
    ("trace uint64", lambda p: ["cachesim", "--trace", _npy(p, "u.npy", np.array(
        [2**64 - 1], np.uint64)), "--device", "core-i7"], "too large"),
    ("densities NaN text", lambda p: ["energy", NET, "--device", "core-i7", "--weight-format",
                                      "csr", "--densities", _csv(p, "layer,weight_density\n"
                                                                    "ip1,nan\n")],
     "line 2 ('ip1'): weight_density must be a fraction in (0, 1], got 'nan'"),
    ("densities True", lambda p: ["energy", NET, "--device", "core-i7", "--weight-format", "csr",
                                  "--densities", _csv(p, "layer,weight_density\nip1,True\n")],
     "got 'True'"),
]


def _csv(tmp_path, text):
    path = tmp_path / "d.csv"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("argv, phrase", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_bad_cli_input_is_one_line_and_exit_2(tmp_path, capsys, argv, phrase):
    code = main(argv(tmp_path))
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("hwprune: error: ") and err.count("\n") == 1 and phrase in err


def test_the_same_densities_in_every_form_give_the_same_energy(tmp_path):
    expected = api.energy(NET, "eyeriss", {"ip1": (0.5, 0.25), "ip2": 0.3})
    forms = [
        {"ip1": {"weight_density": 0.5, "act_density": 0.25}, "ip2": {"weight_density": 0.3}},
        pd.Series({"ip1": (0.5, 0.25), "ip2": 0.3}),
        pd.DataFrame({"layer": ["ip1", "ip2"], "weight_density": [0.5, 0.3],
                      "act_density": [0.25, 1.0]}),
        pd.DataFrame({"weight_density": [0.5, 0.3], "act_density": [0.25, 1]},
                     index=["ip1", "ip2"]),
        _csv(tmp_path, "\ufefflayer,weight_density,act_density\r\nip1,0.5,0.25\r\n\r\n ip2 ,0.3,\r\n"),
    ]
    for form in forms:
        pd.testing.assert_frame_equal(api.energy(NET, "eyeriss", form), expected)


def test_good_trace_files_of_any_integer_dtype_agree(tmp_path):
    rows = np.array([[0, 4, 0], [64, 64, 1], [4000, 4096, 0]])
    tables = [api.cachesim_trace(_npy(tmp_path, f"{dt}.npy", rows.astype(dt)), "core-i7")
              for dt in (np.int64, np.uint64, np.int32, np.uint16)]
    for t in tables[1:]:
        pd.testing.assert_frame_equal(t, tables[0])


# -- the densities reader, fuzzed: a valid dict of densities or an InputError ----------

def _valid(result):
    assert isinstance(result, dict)
    for layer, d in result.items():
        assert isinstance(layer, str) and layer == layer.strip() and layer
        assert isinstance(d, Density)
        for v in (d.weight, d.act):
            assert isinstance(v, float) and math.isfinite(v) and 0.0 < v <= 1.0


_cells = st.one_of(
    st.sampled_from(["", " ", "0.5", "1", "0", "-0.1", "1e-3", "nan", "inf", "NA", "True",
                     "1_0", "0x1", '"0.5"', "0.5 ", "１", "2", "1e999", "1e-999"]),
    st.text(max_size=6))
_names = st.one_of(st.sampled_from(["ip1", "ip2", " ip1", "", '"a,b"', "layer"]),
                   st.text(max_size=5))
_headers = st.sampled_from(["layer,weight_density,act_density", "layer,weight_density",
                            "layer,act_density", "\ufefflayer,weight_density", "layer",
                            "weight_density,layer", "layer,weight_density,weight_density",
                            "name,density", "", " layer , act_density "])


@st.composite
def _csv_texts(draw):
    lines = [draw(_headers)]
    for _ in range(draw(st.integers(0, 5))):
        n = draw(st.integers(0, 4))
        lines.append(",".join([draw(_names)] + [draw(_cells) for _ in range(max(n - 1, 0))])
                     if n else "")
    sep = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = sep.join(lines) + draw(st.sampled_from(["", sep, '"', "\x00"]))
    return draw(st.sampled_from(["", "\ufeff"])) + text


_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 3), st.booleans(),
    st.none(), st.just(pd.NA), st.just(np.nan), st.just(np.True_), st.text(max_size=4),
    st.tuples(st.floats(0.01, 1), st.floats(0.01, 1)), st.just((0.5,)),
    st.just({"weight_density": 0.5}), st.just({"other": 1}), st.just([0.5, None]),
    st.just(10 ** 400), st.just(np.float32(0.25)), st.just(np.int64(1)))
_keys = st.one_of(st.sampled_from(["ip1", "ip2", " ip1 ", ""]), st.integers(-2, 2),
                  st.floats(allow_nan=True), st.none(), st.booleans())


def _read(form):
    try:
        _valid(parse_densities(form))
    except InputError as exc:
        assert str(exc) and "\n" not in str(exc)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_csv_texts(), raw=st.booleans())
def test_fuzzed_csv_text_gives_densities_or_an_input_error(tmp_path, text, raw):
    path = tmp_path / "fuzz.csv"
    if raw:
        path.write_bytes(text.encode("utf-8", "surrogatepass") + b"\xff" * (len(text) % 2))
    else:
        path.write_text(text, encoding="utf-8", errors="surrogatepass", newline="")
    _read(str(path))


@settings(max_examples=150, deadline=None)
@given(items=st.lists(st.tuples(_keys, _values), max_size=4))
def test_fuzzed_python_densities_give_densities_or_an_input_error(items):
    _read(dict(items))
    _read(pd.Series([v for _, v in items], index=[k for k, _ in items], dtype=object))
    frame = {"layer": [k for k, _ in items],
             "weight_density": [v if not isinstance(v, (tuple, list, dict)) else 0.5
                                for _, v in items]}
    _read(pd.DataFrame(frame))
    _read(pd.DataFrame(frame).set_index("layer"))
    _read(pd.DataFrame({"layer": frame["layer"], "act_density": frame["weight_density"]}))
