"""The sweep engine: every point of a study is a task, run in this process or on Dask,
and every finished point goes to a Parquet store that a re-run resumes from.

A :class:`Task` is a key (stable and unique within its study), a module-level function
and its arguments (both picklable: a Dask worker imports the function by name), and the
store table its rows go to. :func:`run` takes the tasks of one study:

* **Where.** ``workers=0`` runs them one after the other in this process, with one
  BLAS thread (as a worker has: the tasks' small products ran 25% faster so here);
  ``workers=N`` (N >= 1) starts a ``dask.distributed.LocalCluster`` of N worker
  processes, one thread each; ``scheduler="tcp://HOST:PORT"`` sends them to a running
  Dask cluster (``dask scheduler`` and ``dask worker`` on the machines; every worker
  needs hwprune installed, and a user's ``--model MODULE:FACTORY`` importable). Dask's
  nannies start workers with one BLAS/OpenMP thread. The results do not depend on the
  schedule: each task starts from its own seeded state.
* **The store.** With a :class:`Store`, each finished task's rows are written at once
  to ``<table>/<hash of key>.parquet`` (a temporary file renamed into place, with the
  key, the study's definition and hwprune's version in the Parquet metadata); a task
  whose file exists is not run again, so an interrupted study loses only the tasks in
  flight. ``study.json`` holds the definition the store was made for: another
  definition is an error unless ``force`` (which empties the store).
* **Failures.** A task that raises is recorded (key and the error's last line, in
  ``failures.json`` of the store, and in :attr:`Outcome.failures`) and the others run
  on; :func:`run` returns what finished. A worker lost mid-task is retried by Dask
  (``distributed.scheduler.allowed-failures``) and recorded if it keeps failing; a
  cluster left with no worker for :data:`WORKER_WAIT_S` stops the study with an error
  (the finished points are in the store).
* **Progress.** A tqdm bar on standard error (points done of the total, with the
  estimated time left) when standard error is a terminal; otherwise one line per
  finished point through ``progress``.

Why Dask: it is a maintained distributed engine with a local cluster, a scheduler that
runs on a laptop or a cluster alike, retries and worker restarts, so hwprune keeps no
process pool of its own (docs/scaling.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
from threadpoolctl import threadpool_limits

from ..errors import HwpruneError, InputError

STORE = "store"
"""The store's directory under a study's output directory."""

DEFINITION = "study.json"
FAILURES = "failures.json"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hwprune")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class Task:
    """One point of a study: ``fn(*args)`` returns its rows, a DataFrame for the one
    table of ``tables``, or a dict of DataFrames by table name."""

    key: str
    fn: Callable[..., pd.DataFrame | dict[str, pd.DataFrame]]
    args: tuple = ()
    tables: tuple[str, ...] = ("points",)
    needs: tuple[str, ...] = ()
    """Keys of tasks whose results this one takes: it runs after them, called with
    ``*args`` and a dict ``{key: {table: rows}}`` of theirs as the last argument."""

    @property
    def file(self) -> str:
        return hashlib.sha1(self.key.encode()).hexdigest()[:20] + ".parquet"

    def split(self, result) -> dict[str, pd.DataFrame]:
        """The task's result as ``{table: rows}`` for every table it names."""
        if isinstance(result, pd.DataFrame) and len(self.tables) == 1:
            return {self.tables[0]: result}
        if not isinstance(result, dict) or set(result) != set(self.tables):
            raise TypeError(f"task {self.key!r} returned {type(result).__name__}, not its tables "
                            + ", ".join(self.tables))
        return result


@dataclass
class Outcome:
    """What a run left: ``tables`` (table name -> rows of every finished task, in task
    order), ``failures`` (key -> the error's last line), ``ran`` (tasks run now),
    ``skipped`` (tasks the store already had), ``results`` (key -> table -> rows)."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    ran: int = 0
    skipped: int = 0
    results: dict[str, dict[str, pd.DataFrame]] = field(default_factory=dict)
    """Each finished task's rows, by key and table."""

    def table(self, name: str = "points") -> pd.DataFrame:
        return self.tables.get(name, pd.DataFrame())

    def summary(self) -> str:
        """One line: points run, taken from the store, failed (with their keys)."""
        text = f"{self.ran} point(s) run, {self.skipped} taken from the store"
        if self.failures:
            text += (f", {len(self.failures)} failed: "
                     + "; ".join(f"{k}: {v}" for k, v in self.failures.items()))
        return text


class Store:
    """A study's finished points under ``root`` (see the module docstring)."""

    def __init__(self, root: str | Path, definition: dict[str, Any], force: bool = False):
        self.root = Path(root)
        self.definition = {**definition, "hwprune": _version()}
        text = self.root / DEFINITION
        if text.exists():
            try:
                old = json.loads(text.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                old = None
            if old != self.definition:
                if not force:
                    raise InputError(
                        f"{self.root} holds the points of another study definition ("
                        + _difference(old, self.definition) + "); give the same options to "
                        "resume it, another --out, or --force to start this one afresh")
                self.clear()
        self.root.mkdir(parents=True, exist_ok=True)
        _write_atomic(text, json.dumps(self.definition, indent=1, sort_keys=True) + "\n")

    def clear(self) -> None:
        """Remove every stored point and record (``--force`` on another definition)."""
        import shutil

        if self.root.exists():
            shutil.rmtree(self.root)

    def has(self, task: Task) -> bool:
        """Whether every table of ``task`` is stored (the first table is written last)."""
        return all((self.root / name / task.file).exists() for name in task.tables)

    def put(self, task: Task, tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        """Write each table's rows as the task's Parquet file there (atomically; the
        first table last, so that :meth:`has` sees a task whole or not at all); returns
        the rows as :meth:`get` will read them back (through the same Arrow tables)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        stored = {}
        for name in reversed(task.tables):
            directory = self.root / name
            directory.mkdir(parents=True, exist_ok=True)
            table = pa.Table.from_pandas(tables[name].reset_index(drop=True), preserve_index=False)
            meta = dict(table.schema.metadata or {})
            meta.update({b"hwprune.key": task.key.encode(),
                         b"hwprune.study": json.dumps(self.definition, sort_keys=True).encode()})
            table = table.replace_schema_metadata(meta)
            fd, tmp = tempfile.mkstemp(prefix=".part-", suffix=".tmp", dir=directory)
            os.close(fd)
            try:
                pq.write_table(table, tmp)
                os.replace(tmp, directory / task.file)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            stored[name] = table.to_pandas()
        self._forget_failure(task.key)
        return {name: stored[name] for name in task.tables}

    def get(self, task: Task) -> dict[str, pd.DataFrame]:
        import pyarrow.parquet as pq

        return {name: pq.read_table(self.root / name / task.file).to_pandas()
                for name in task.tables}

    def failures(self) -> dict[str, str]:
        try:
            data = json.loads((self.root / FAILURES).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def fail(self, key: str, message: str) -> None:
        failures = {**self.failures(), key: message}
        _write_atomic(self.root / FAILURES, json.dumps(failures, indent=1, sort_keys=True) + "\n")

    def _forget_failure(self, key: str) -> None:
        failures = self.failures()
        if key in failures:
            del failures[key]
            _write_atomic(self.root / FAILURES, json.dumps(failures, indent=1, sort_keys=True) + "\n")


def _difference(old: Any, new: dict) -> str:
    if not isinstance(old, dict):
        return "its study.json is unreadable"
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in keys[:3])


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _last_line(exc: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()
    return text[-1] if text else type(exc).__name__


class _Bar:
    """Points done of the total and the time left: tqdm on a terminal, else one line
    per point through ``progress`` (nothing without it)."""

    def __init__(self, total: int, done: int, progress: Callable[[str], None] | None):
        self.progress = progress
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, unit="point", file=sys.stderr,
                            dynamic_ncols=True)

    def step(self, key: str, failed: bool = False) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(key[-40:], refresh=False)
            self.bar.update(1)
        elif self.progress is not None:
            self.progress(("FAILED " if failed else "") + key)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Runner:
    """Where a study's tasks run and which store keeps them (module docstring):
    ``workers`` (0: this process), ``scheduler`` (a Dask scheduler's address), ``store``
    and ``preflight`` (checks every worker runs before any task: picklable callables
    returning None if the worker can run the study, else why not, e.g. the user's model
    cannot be imported there; a refusal is an :class:`InputError` naming the worker).

    Used as a context manager (``with runner:``), the Dask cluster starts at once in the
    background, while this process goes on (training the reference models), and stays
    up for every :meth:`run` and :meth:`map` until the block ends; otherwise each
    :meth:`run` starts and stops its own."""

    def __init__(self, workers: int = 0, scheduler: str | None = None, store: Store | None = None,
                 preflight: Sequence[Callable[[], str | None]] = ()):
        self.workers, self.scheduler, self.store = workers, scheduler, store
        self.preflight = tuple(preflight)
        self._dask: _Dask | None = None
        self._starting: threading.Thread | None = None
        self._failed: BaseException | None = None

    @property
    def distributed(self) -> bool:
        return bool(self.workers or self.scheduler)

    def start(self) -> "Runner":
        """Start the cluster in a background thread (nothing in this process)."""
        if self.distributed and self._starting is None:
            def connect() -> None:
                try:
                    self._dask = _Dask(self.workers, self.scheduler)
                    self._dask.check(self.preflight)
                except BaseException as exc:    # raised where the cluster is first needed
                    self._failed = exc

            self._starting = threading.Thread(target=connect, name="hwprune-dask-start",
                                              daemon=True)
            self._starting.start()
        return self

    def _cluster(self) -> "_Dask | None":
        if self._starting is None:
            return None
        self._starting.join()
        if self._failed is not None:
            raise self._failed
        return self._dask

    def close(self) -> None:
        if self._starting is not None:
            self._starting.join()
            if self._dask is not None:
                self._dask.close()
        self._dask = self._starting = self._failed = None

    def __enter__(self) -> "Runner":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def run(self, tasks: Sequence[Task], progress: Callable[[str], None] | None = None) -> Outcome:
        return run(tasks, self.store, self.workers, self.scheduler, progress, self.preflight,
                   self._cluster())

    def map(self, fn: Callable, items: Sequence) -> list:
        """``[fn(item) for item in items]``, on the started cluster if there is one (the
        report's figures; nothing is stored), else in this process."""
        cluster = self._cluster()
        if cluster is None:
            return [fn(item) for item in items]
        futures = cluster.client.map(fn, list(items), pure=False)
        return cluster.client.gather(futures)


def run(tasks: Sequence[Task], store: Store | None = None, workers: int = 0,
        scheduler: str | None = None, progress: Callable[[str], None] | None = None,
        preflight: Sequence[Callable[[], str | None]] = (), started: "_Dask | None" = None) -> Outcome:
    """Run ``tasks`` (module docstring) and return their rows by table, in task order;
    on workers, each of ``preflight`` first (:class:`Runner`); ``started``: a cluster
    already up (checked, and left up), else one is started for these tasks."""
    keys = [t.key for t in tasks]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise InputError(f"two tasks of one study share the key {dup!r}")
    outcome = Outcome()
    rows: dict[str, dict[str, pd.DataFrame]] = {}
    pending = []
    for task in tasks:
        if store is not None and store.has(task):
            rows[task.key] = store.get(task)
            outcome.skipped += 1
        else:
            pending.append(task)
    bar = _Bar(len(tasks), outcome.skipped, progress)

    def finished(task: Task, result, error: BaseException | None) -> None:
        if error is None:
            try:
                result = task.split(result)
            except TypeError as exc:
                error = exc
        if error is None:
            rows[task.key] = result
            if store is not None:         # what the study reports is what the store holds
                rows[task.key] = store.put(task, result)
        else:
            outcome.failures[task.key] = _last_line(error)
            if store is not None:
                store.fail(task.key, outcome.failures[task.key])
        outcome.ran += 1
        bar.step(task.key, error is not None)

    cluster = None
    try:
        if pending and started is not None:
            started.run(pending, rows, finished)
            pending = []
        elif pending and (workers or scheduler):
            cluster = _Dask(workers, scheduler)
            cluster.check(preflight)
            cluster.run(pending, rows, finished)
            pending = []
        while pending:
            ready, waiting = [], []
            for task in pending:
                missing = [k for k in task.needs if k not in rows]
                failed = [k for k in missing if k in outcome.failures]
                if failed:
                    finished(task, None, RuntimeError(f"needs {failed[0]!r}, which failed"))
                elif missing:
                    waiting.append(task)
                else:
                    ready.append(task)
            if not ready:
                if waiting:
                    raise InputError(f"task {waiting[0].key!r} needs {waiting[0].needs!r}, "
                                     "which no task of the study makes")
                break
            for task in ready:
                args = task.args + (({k: rows[k] for k in task.needs},) if task.needs else ())
                try:
                    with threadpool_limits(limits=1):   # as on a worker, and faster here
                        result = task.fn(*args)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as exc:        # recorded; the study goes on
                    finished(task, None, exc)
                else:
                    finished(task, result, None)
            pending = waiting
    finally:
        bar.close()
        if cluster is not None:
            cluster.close()
    outcome.results = rows
    for name in dict.fromkeys(n for t in tasks for n in t.tables):
        parts = [rows[t.key][name] for t in tasks if name in t.tables and t.key in rows]
        outcome.tables[name] = (pd.concat(parts, ignore_index=True) if parts
                                else pd.DataFrame())
    return outcome


def _topological(tasks: Sequence[Task], done: set[str]) -> list[Task]:
    """``tasks`` with every task after the tasks it needs (those not in ``done``)."""
    keys = {t.key for t in tasks}
    out, placed = [], set(done)
    remaining = list(tasks)
    while remaining:
        ready = [t for t in remaining if all(k in placed or k not in keys for k in t.needs)]
        if not ready:
            raise InputError(f"task {remaining[0].key!r} needs {remaining[0].needs!r}, which no "
                             "task of the study makes")
        out += ready
        placed |= {t.key for t in ready}
        remaining = [t for t in remaining if t.key not in placed]
    return out


def _with_needs(fn, args: tuple, deps: dict, tables: dict):
    """Run ``fn(*args, results)`` on a worker: ``deps`` (key -> a finished task's raw
    result, or its stored tables) as ``{key: {table: rows}}``."""
    results = {}
    for key, raw in deps.items():
        names = tables.get(key, ())
        results[key] = raw if isinstance(raw, dict) else {names[0] if names else "points": raw}
    return fn(*args, results)


PRELOAD = ("hwprune.studies.tradeoff", "hwprune.studies.report_study")
"""Modules a local worker imports as it starts (the studies' task functions and the cost
models under them), while this process trains the models, rather than on its first task."""

WORKER_WAIT_S = 30
"""How long a study waits for a worker when its cluster has none: the first of a
running scheduler, or another after every worker was lost (seconds)."""

POLL_S = 5
"""How often a waiting study looks whether its cluster still has workers (seconds)."""

WORKER_CONFIG = {"distributed.worker.profile.enabled": False,
                 "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
"""Dask settings of the local cluster's workers (measured: docs/scaling.md). Dask's
nannies start workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also fixes glibc's
mmap threshold at 128 KiB: every numpy array above it is then mapped and unmapped afresh,
and on hwprune's tasks (many short-lived arrays of a few hundred KiB) a worker spent
about 14% of its time in page faults (3.2 s of system time per worker on
``tradeoff digits-mlp``, against 0.3 s in this process). Left unset, glibc's own
adaptive thresholds apply, as in a plain Python process."""


class _Dask:
    """A Dask client: on a new LocalCluster of ``workers`` processes, or on the
    scheduler at ``scheduler``."""

    def __init__(self, workers: int, scheduler: str | None):
        try:
            from distributed import Client, LocalCluster
        except ImportError:             # pragma: no cover - dask is a core dependency
            raise InputError("running a study on workers needs dask[distributed] "
                             "(python -m pip install 'dask[distributed]')") from None
        self.cluster = None
        if scheduler:
            try:
                self.client = Client(scheduler, timeout="5s")
            except (OSError, TimeoutError) as exc:
                raise InputError(f"cannot reach the Dask scheduler at {scheduler}: {exc}; start "
                                 "one with 'dask scheduler' and workers with 'dask worker "
                                 "ADDRESS' (docs/scaling.md)") from None
            try:
                self.client.wait_for_workers(1, timeout=WORKER_WAIT_S)
            except (OSError, TimeoutError):
                self.client.close()
                raise InputError(f"the Dask scheduler at {scheduler} has no worker (none joined "
                                 f"in {WORKER_WAIT_S} s); start one with 'dask worker "
                                 f"{scheduler} --nthreads 1' (docs/scaling.md)") from None
        else:
            import warnings

            import dask

            # Another Dask cluster on this machine holds the scheduler's HTTP port; Dask
            # then takes a random one, which is fine, and says so on stderr.
            warnings.filterwarnings("ignore", message=r"Port \d+ is already in use",
                                    category=UserWarning)
            # Dask's statistical profiler samples every worker thread's stack every 10 ms;
            # on hwprune's Python-heavy tasks that cost about a fifth of a worker's time;
            # and its malloc setting costs page faults (WORKER_CONFIG).
            with dask.config.set(WORKER_CONFIG):
                self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                            processes=True, dashboard_address=None,
                                            silence_logs=40, preload=list(PRELOAD))
            self.client = Client(self.cluster)

    def check(self, preflight: Sequence[Callable[[], str | None]]) -> None:
        """Run each check on every worker; an :class:`InputError` for the first refusal."""
        for check in preflight:
            answers = self.client.run(check)
            refused = {addr: why for addr, why in sorted(answers.items()) if why}
            if refused:
                addr, why = next(iter(refused.items()))
                raise InputError(f"the Dask worker at {addr} cannot run this study: {why} (every "
                                 "worker needs hwprune and your model's module importable; "
                                 "docs/scaling.md)")

    def run(self, tasks: Sequence[Task], done: dict[str, dict], finished) -> None:
        """Submit every task at once, a task that needs others with their futures (Dask
        runs it when they finish; results the store already had are passed as they
        are); report each as it finishes."""
        from distributed import wait

        by_key = {t.key: t for t in tasks}
        futures: dict[str, Any] = {}
        # Tasks that others wait for go first (Dask runs earlier submissions first): the
        # long chains (Scalpel's searches, then its choices) start at once and the short
        # points fill the workers around them.
        needed = {k for t in tasks for k in t.needs}
        order = _topological(sorted(tasks, key=lambda t: t.key not in needed), set(done))
        for task in order:
            args = task.args
            if task.needs:
                deps = {k: (futures[k] if k in futures else done[k]) for k in task.needs}
                tables = {k: by_key[k].tables for k in task.needs if k in by_key}
                args = (task.fn, args, deps, tables)
                fn = _with_needs
            else:
                fn = task.fn
            futures[task.key] = self.client.submit(fn, *args, key=f"hwprune-{task.file[:-8]}",
                                                   pure=False)
        owner = {f: by_key[k] for k, f in futures.items()}
        rank = {task.key: i for i, task in enumerate(order)}
        pending, alone_since = set(futures.values()), None
        while pending:
            try:
                done, pending = wait(pending, timeout=POLL_S, return_when="FIRST_COMPLETED")
            except TimeoutError:
                done = set()
            for future in sorted(done, key=lambda f: rank[owner[f].key]):
                task = owner[future]
                if future.status == "error":
                    finished(task, None, future.exception())
                else:
                    finished(task, future.result(), None)
            if done or self.client.scheduler_info(n_workers=1)["workers"]:
                alone_since = None
            elif alone_since is None:
                alone_since = time.monotonic()
            elif time.monotonic() - alone_since > WORKER_WAIT_S:
                raise HwpruneError(
                    f"the Dask cluster lost all its workers ({len(pending)} point(s) left); "
                    "the finished points are in the store: run the same command again once "
                    "workers are back")

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
