"""The layering of hwprune, checked statically: every import under hwprune/ goes downhill.

Each ``.py`` file under ``hwprune/`` is parsed with ``ast`` (nothing is imported) and
every import is collected, at module level and inside functions, absolute
(``hwprune.x.y``) or relative (``from ..x import y``, ``from . import y``, resolved
against the importing module's package). ``from pkg import name`` imports ``pkg.name``
when that is a module and ``pkg`` otherwise. Importing ``pkg.mod`` does not count as
importing ``pkg/__init__.py`` as well, or everything would depend on hwprune/__init__.py.

A *unit* is a top-level package (``hwprune/cost/energy.py`` is in ``cost``) or module
(``hwprune/errors.py`` is ``errors``); ``hwprune/__init__.py`` is the unit ``hwprune``.
A module may import its own unit or units of strictly lower rank in ``RANKS``: from
rank 0 (errors, checks) up to rank 11 (cli, ``__main__``, and ``hwprune/__init__.py``,
which re-exports the API). Same-rank exceptions are named in ``ALLOWED``: ``checks``
raises ``errors``, ``__main__`` runs ``cli``, and ``cli`` reads ``__version__`` from
``hwprune``. ``cli`` may import
only ``CLI_MAY_IMPORT``; anything else reaches it through ``api``. Units in ``RANKS``
but not on disk yet are fine; a unit on disk that is missing from ``RANKS`` fails, so
that new packages are placed deliberately. Module-level import cycles fail too.

The table is the package direction of docs/architecture.md; change the two together.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "hwprune"

RANKS = {
    "errors": 0, "checks": 0,
    "schemes": 1, "hardware": 1,
    "workload": 2,
    "sparse": 3,
    "cost": 4,
    "latency": 5,
    "evaluate": 6,
    "calibrate": 7, "prune": 7,
    "studies": 8,
    "report": 9,
    "api": 10,
    "cli": 11, "__main__": 11, "hwprune": 11,  # "hwprune" is hwprune/__init__.py
}
ALLOWED = {("checks", "errors"), ("__main__", "cli"), ("cli", "hwprune")}
CLI_MAY_IMPORT = {"cli", "api", "errors", "report", "hwprune"}


def unit(module: str) -> str:
    return module.split(".")[1] if "." in module else module


def import_graph(root: Path) -> tuple[dict[str, Path], dict[str, set[str]]]:
    """Modules (dotted name -> file) and edges (importer -> modules of the package)."""
    files = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package[: len(package) + 1 - node.level] + [base] * bool(base))
                for alias in node.names:
                    targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base)
        graph[mod] = {t for t in targets if t == root.name or t.startswith(root.name + ".")}
    return files, graph


def cycles(graph: dict[str, set[str]]) -> list[tuple[list[str], set[str]]]:
    """Each group of mutually importing modules, with one shortest cycle through it."""
    reach = {}
    for start in graph:
        seen, todo = set(), [start]
        while todo:
            new = graph.get(todo.pop(), set()) - seen
            seen |= new
            todo += new
        reach[start] = seen
    groups: list[set[str]] = []
    for v in sorted(graph):
        if v in reach[v] and not any(v in group for group in groups):
            groups.append({w for w in reach[v] if v in reach.get(w, ())})
    return [(shortest_cycle(graph, group), group) for group in groups]


def shortest_cycle(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    best: list[str] = []
    for start in sorted(group):  # breadth first from start, up to an edge back to it
        prev: dict[str, str | None] = {start: None}
        queue = [start]
        for v in queue:
            if start in graph[v]:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                if not best or len(path) + 1 < len(best):
                    best = path[::-1] + [start]
                break
            for w in sorted(graph[v] & group - prev.keys()):
                prev[w] = v
                queue.append(w)
    return best


def problems(root: Path) -> list[str]:
    """Every unranked unit, import cycle and import against the direction, one a line."""
    files, graph = import_graph(root)
    unranked = {unit(m): files[m] for m in sorted(files, reverse=True) if unit(m) not in RANKS}
    out = [f"{path.relative_to(root.parent).as_posix()}: unit {u!r} is not in the rank table;"
           " add it to RANKS in tests/test_layering.py (and to docs/architecture.md)"
           for u, path in sorted(unranked.items())]
    for chain, group in cycles(graph):
        more = f" (one of {len(group)} modules in a cycle: {', '.join(sorted(group))})"
        out.append("import cycle: " + " -> ".join(chain) + more * (len(group) >= len(chain)))
    for mod in sorted(graph):
        where, a = files[mod].relative_to(root.parent).as_posix(), unit(mod)
        for target in sorted(graph[mod]):
            x = unit(target)
            if a == x or a not in RANKS or x not in RANKS:
                continue  # unranked units on disk are reported above
            ranks = f"rank of {a} = {RANKS[a]}, {x} = {RANKS[x]}"
            if a == "cli" and x not in CLI_MAY_IMPORT:
                out.append(f"{where} imports {target} ({ranks}; cli may import only "
                           "api, errors, report and hwprune, the rest through api)")
            elif RANKS[x] >= RANKS[a] and (a, x) not in ALLOWED:
                out.append(f"{where} imports {target} ({ranks})")
    return out


def test_layering():
    found = problems(ROOT)
    assert not found, f"{len(found)} layering problems:\n" + "\n".join(found)


def test_real_graph_is_not_empty():
    files, graph = import_graph(ROOT)
    assert len(files) > 50
    assert sum(map(len, graph.values())) > 100


def test_checker_finds_cycles_and_upward_imports(tmp_path):
    sources = {
        "__init__.py": "from .api import run\n",
        "api.py": "from .cost import energy\n",
        "errors.py": "def f():\n    from hwprune.cost import table\n",  # upward, in a function
        "cli.py": "from .cost import energy\nfrom . import api, __version__\n",  # past api
        "mystery.py": "",  # not in the rank table
        "workload/ops.py": "from ..errors import f\n",
        "cost/__init__.py": "from .energy import table\n",
        "cost/energy.py": "def table():\n    from . import loop\n",
        "cost/loop.py": "import hwprune.cost.energy\n",  # energy -> loop -> energy
    }
    for name, text in sources.items():
        (tmp_path / "hwprune" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "hwprune" / name).write_text(text)
    _, graph = import_graph(tmp_path / "hwprune")
    assert graph["hwprune.cli"] == {"hwprune.cost.energy", "hwprune.api", "hwprune"}
    assert graph["hwprune.workload.ops"] == {"hwprune.errors"}
    assert graph["hwprune.cost"] == {"hwprune.cost.energy"}
    assert graph["hwprune.errors"] == {"hwprune.cost"}
    assert problems(tmp_path / "hwprune") == [
        "hwprune/mystery.py: unit 'mystery' is not in the rank table; add it to RANKS in "
        "tests/test_layering.py (and to docs/architecture.md)",
        "import cycle: hwprune.cost.energy -> hwprune.cost.loop -> hwprune.cost.energy",
        "hwprune/cli.py imports hwprune.cost.energy (rank of cli = 11, cost = 4; cli may "
        "import only api, errors, report and hwprune, the rest through api)",
        "hwprune/errors.py imports hwprune.cost (rank of errors = 0, cost = 4)",
    ]
