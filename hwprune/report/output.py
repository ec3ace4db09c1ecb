"""Render result tables as text, CSV or JSON, and write files and directories safely.

Every output hwprune writes goes through this module:

* :func:`check_out_path` and :func:`check_out_dir` are called before any long work, so
  that an output location that cannot be written costs nothing (one ``InputError``
  naming the path and the operating system's reason);
* :func:`write_atomic` writes a file through a temporary file in the same directory and
  a rename; ``-`` means standard output, and character devices and FIFOs (``/dev/null``,
  ``/dev/stdout``, a named pipe) are written through, never replaced; a symbolic link is
  kept and the file it points to is replaced atomically;
* :class:`OutputDirectory` writes a run's files into a staging directory and moves them
  in together, ending with the ``.hwprune`` manifest (see :data:`MARKER`);
* temporary files and directories are named ``.NAME.hwprune-PID-RANDOM.tmp`` and kept
  in a registry while in use, so that the CLI's SIGTERM/SIGHUP handler can remove them
  (:func:`remove_in_progress`); files of that pattern left by a process that is gone
  (SIGKILL, power loss) are removed by the next write beside them, and never count as
  content of an output directory.

CSV text cells that a spreadsheet would read as a formula are prefixed with ``'``
(:func:`csv_text`); numbers are left as numbers.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import stat
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..studies.engine import DEFINITION, STORE

FORMATS = ("table", "csv", "json")
"""Accepted values of ``--format``."""

STDOUT = "-"
"""The ``--out`` value that means standard output."""

MARKER = ".hwprune"
"""The manifest hwprune writes last into each output directory: JSON naming the files
of the run. A directory holding it was made by hwprune and may be written again."""

_TEMP_TAG = ".hwprune-"
_TEMP_RE = re.compile(r"^\..*\.hwprune-(\d+)-[A-Za-z0-9_]+\.tmp$")
_in_progress: dict[str, None] = {}     # temporary files and directories now in use


# --------------------------------------------------------------------------- rendering

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a CSV cell as a formula (OWASP)."""


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_cell(value: object) -> object:
    """``value`` safe for a spreadsheet: a text cell that starts with one of
    :data:`FORMULA_START` gets a leading ``'`` (OWASP's advice against CSV formula
    injection). Numbers, and text that is a plain number such as ``-0.5``, stay as
    they are, so that a negative number is still a number."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _is_number(value):
        return "'" + value
    return value


def csv_text(df: pd.DataFrame, **kwargs) -> str:
    """``df.to_csv(index=False)`` with text cells and column names passed through
    :func:`csv_cell`; numeric columns are written untouched."""
    safe = df.copy()
    for column in safe.columns:
        if not pd.api.types.is_numeric_dtype(safe[column]) and \
                not pd.api.types.is_bool_dtype(safe[column]):
            safe[column] = safe[column].map(csv_cell)
    safe.columns = [csv_cell(str(c)) for c in safe.columns]
    return safe.to_csv(index=False, **kwargs)


def _cell(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return ""
        if float(value).is_integer() and abs(value) < 1e6:
            return f"{int(value):,}"
        return f"{value:.4g}"
    return str(value)


def _table_text(df: pd.DataFrame) -> str:
    """Aligned columns: text left, numbers right, digits grouped."""
    if df.empty:
        return "(no rows)\n"
    columns = [str(c) for c in df.columns]
    cells = [[_cell(v) for v in df[c].tolist()] for c in df.columns]
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
    widths = [max(len(name), *(len(v) for v in col)) for name, col in zip(columns, cells)]

    def line(values: list[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(parts).rstrip()

    rows = [line(columns)] + [line([col[i] for col in cells]) for i in range(len(df))]
    return "\n".join(rows) + "\n"


def render(df: pd.DataFrame, fmt: str) -> str:
    """``df`` as text in ``fmt`` (one of :data:`FORMATS`).

    ``table`` aligns columns and groups digits for reading; ``csv`` and ``json``
    keep full precision. ``json`` is a list of row objects, numbers as numbers. ``csv``
    escapes text cells that would start a spreadsheet formula (:func:`csv_cell`).
    """
    if fmt == "table":
        return _table_text(df)
    if fmt == "csv":
        return csv_text(df)
    if fmt == "json":
        return df.to_json(orient="records", indent=2, double_precision=15) + "\n"
    raise InputError(f"unknown format {fmt!r}; accepted formats: " + ", ".join(FORMATS))


# ------------------------------------------------------------------ temporary files

def _register(path: str | Path) -> None:
    _in_progress[str(path)] = None


def _unregister(path: str | Path) -> None:
    _in_progress.pop(str(path), None)


def in_progress() -> list[str]:
    """The temporary files and directories of writes now in progress."""
    return list(_in_progress)


def remove_in_progress() -> None:
    """Remove the temporary files and directories of every write in progress (the CLI
    calls this from its SIGTERM/SIGHUP handler; safe to call twice)."""
    for path in list(_in_progress):
        _remove(path)
        _in_progress.pop(path, None)


def _remove(path: str) -> None:
    """Remove a temporary file or directory, quietly (it may be gone already)."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except OSError:
        pass


def _temp_prefix(name: str) -> str:
    return f".{name[:64]}{_TEMP_TAG}{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False            # ours only if registered, which the caller checks
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def is_own_temp(name: str) -> bool:
    """Whether ``name`` is one of hwprune's temporary files or directories."""
    return _TEMP_RE.match(name) is not None


def remove_stale_temps(directory: str | Path, name: str | None = None) -> None:
    """Remove hwprune temporary files in ``directory`` (those of ``name`` only, if given)
    whose process is gone; never one in use by a living process."""
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    start = None if name is None else f".{name[:64]}{_TEMP_TAG}"
    for entry in entries:
        match = _TEMP_RE.match(entry)
        if not match or (start is not None and not entry.startswith(start)):
            continue
        full = os.path.join(directory, entry)
        if full in _in_progress or _pid_alive(int(match.group(1))):
            continue
        _remove(full)


# ------------------------------------------------------------------- output checks

def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _stat(path: Path, what: str) -> os.stat_result | None:
    """``os.stat(path)`` (following links), None if nothing is there, else InputError."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(f"cannot write {what}: {_reason(exc)}") from None


def _check_name_length(directory: Path, name: str, what: str) -> None:
    try:
        limit = os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    if len(os.fsencode(name)) > limit:
        raise InputError(f"cannot write {what}: {os.strerror(errno.ENAMETOOLONG)} "
                         f"({len(os.fsencode(name))} bytes; at most {limit} per name)")


def _probe_directory(directory: Path, what: str) -> None:
    """Create and remove a temporary file in ``directory``: the one test that also
    catches a read-only file system, and permissions when running as root."""
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {what}: directory {directory} is not writable")
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix("probe"), suffix=".tmp", dir=directory)
    except OSError as exc:
        raise InputError(f"cannot write {what}: {_reason(exc)}") from None
    os.close(fd)
    try:
        os.unlink(tmp)
    except OSError:
        pass


def _stream(st: os.stat_result | None) -> bool:
    return st is not None and (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode))


def check_out_path(path: str | Path) -> Path:
    """``path`` if a file can be written there, else an :class:`InputError` (checked
    before long work starts, so that a typo costs nothing). ``-`` is standard output;
    a character device or FIFO is accepted if it is writable; a symbolic link is
    followed (its target is what gets replaced)."""
    text = str(path)
    if text == STDOUT:
        return Path(STDOUT)
    if not text:
        raise InputError("cannot write '': give a file name, or - for standard output")
    path = Path(path)
    st = _stat(path, text)
    if text.endswith(("/", "\\")) or (st is not None and stat.S_ISDIR(st.st_mode)):
        raise InputError(f"cannot write {text}: it is a directory; give a file name")
    if _stream(st):
        if not os.access(path, os.W_OK):
            raise InputError(f"cannot write {text}: permission denied")
        return path
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise InputError(f"cannot write {text}: not a regular file, character device or FIFO")
    real = Path(os.path.realpath(path)) if os.path.islink(path) else path
    directory = real.parent if str(real.parent) else Path(".")
    dst = _stat(directory, text)
    if dst is None or not stat.S_ISDIR(dst.st_mode):
        raise InputError(f"cannot write {path}: directory {directory} does not exist")
    _check_name_length(directory, real.name, text)
    _probe_directory(directory, text)
    return path


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and
    a rename, so that a failure never leaves a partial file behind. The file gets the
    usual permissions (0666 less the umask). ``-`` writes to standard output, and a
    character device or FIFO is written directly (never replaced). A symbolic link
    stays a link: the file it points to is replaced atomically."""
    path = check_out_path(path)
    if str(path) == STDOUT:
        if isinstance(data, bytes):
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            sys.stdout.write(data)
            sys.stdout.flush()
        return
    if _stream(_stat(path, str(path))):
        try:
            if isinstance(data, bytes):
                with open(path, "wb") as fh:
                    fh.write(data)
            else:
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(data)
        except OSError as exc:
            raise InputError(f"cannot write {path}: {_reason(exc)}") from None
        return
    shown = path
    if os.path.islink(path):
        path = Path(os.path.realpath(path))
    directory = path.parent if str(path.parent) else Path(".")
    remove_stale_temps(directory, path.name)
    mode = "wb" if isinstance(data, bytes) else "w"
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path.name), suffix=".tmp", dir=directory)
    except OSError as exc:
        raise InputError(f"cannot write {shown}: {_reason(exc)}") from None
    _register(tmp)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise InputError(f"cannot write {shown}: {_reason(exc)}") from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        _unregister(tmp)


# --------------------------------------------------------------- output directories

def _own_entries(path: Path) -> list[str]:
    try:
        return [e for e in os.listdir(path) if not is_own_temp(e)]
    except OSError as exc:
        raise InputError(f"cannot write into {path}: {_reason(exc)}") from None


def _manifest(directory: Path) -> dict | None:
    """The :data:`MARKER` manifest of an earlier hwprune run in ``directory``, if any."""
    try:
        data = json.loads((directory / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _store_verb(directory: Path) -> str | None:
    """The verb whose study store ``directory/store`` holds, if it holds one."""
    try:
        data = json.loads((directory / STORE / DEFINITION).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("verb") if isinstance(data, dict) and isinstance(data.get("verb"), str) else None


def check_out_dir(path: str | Path, force: bool = False, description: str = "") -> Path:
    """``path`` if hwprune may write its output directory there, else an
    :class:`InputError`; checked before any work. The directory may not exist yet
    (it and its parents are created), be empty, or hold the :data:`MARKER` manifest of
    an earlier run of the same verb (``description``) or the study store of an
    interrupted one (:data:`STORE`, which the run resumes); a non-empty directory that
    hwprune did not make, or that another verb wrote, is refused unless ``force``.
    Whether the location can be written is tried, not guessed."""
    text = str(path)
    if not text:
        raise InputError("cannot write into '': give a directory name")
    path = Path(path)
    st = _stat(path, text)
    if st is not None:
        if not stat.S_ISDIR(st.st_mode):
            raise InputError(f"cannot write into {text}: it exists and is not a directory")
        entries = _own_entries(path)
        store_verb = _store_verb(path) if STORE in entries else None
        if store_verb is not None and MARKER not in entries:
            # an interrupted study: its store, and nothing else of a finished run yet
            if store_verb != description and not force:
                raise InputError(f"refusing to write into {text}: it holds the unfinished study "
                                 f"of 'hwprune {store_verb}'; give another directory, or --force")
            _probe_directory(path, text)
            return path
        if entries and MARKER not in entries and not force:
            raise InputError(f"refusing to write into {text}: it is not empty and was not made "
                             f"by hwprune (no {MARKER} file); give an empty or new directory, "
                             "or --force to write beside what is there")
        made_by = (_manifest(path) or {}).get("description", "") if MARKER in entries else ""
        if entries and MARKER in entries and made_by != description and not force:
            raise InputError(f"refusing to write into {text}: it holds the output of "
                             f"'hwprune {made_by or 'another verb'}', which this "
                             f"'hwprune {description or 'run'}' would mix with; give another "
                             "directory, or --force to write beside what is there")
        _probe_directory(path, text)
        return path
    ancestor = path
    missing: list[Path] = []
    while True:
        missing.append(ancestor)
        parent = ancestor.parent
        if parent == ancestor or str(parent) in ("", "."):
            ancestor = Path(".") if str(parent) in ("", ".") else parent
            break
        ancestor = parent
        pst = _stat(ancestor, text)
        if pst is not None:
            if not stat.S_ISDIR(pst.st_mode):
                raise InputError(f"cannot write into {text}: {ancestor} is not a directory")
            break
    for part in missing:
        _check_name_length(part.parent if str(part.parent) else Path("."), part.name, text)
    _probe_directory(ancestor, text)
    return path


class OutputDirectory:
    """A run's files, written together into directory ``target``::

        with OutputDirectory(out, force) as stage:
            write_atomic(stage / "a.csv", ...)

    The files go into a staging directory (``.NAME.hwprune-PID-RANDOM.tmp``: beside
    ``target`` when it does not exist yet, inside it when it does). When the block ends
    without an exception, a new directory is renamed into place as a whole; into an
    existing one, each file is renamed over its old version and the :data:`MARKER`
    manifest is renamed in last, and files that an earlier run of the same verb listed
    and this run did not write are removed (another verb's files are never removed).
    Renames within one file system need no space, so a full disk fails while staging,
    before anything in ``target`` changed. On an exception (or
    SIGTERM/SIGHUP through the CLI) the staging directory is removed and ``target`` is
    as it was."""

    def __init__(self, target: str | Path, force: bool = False, description: str = ""):
        self.target = Path(target)
        self.force = force
        self.description = description
        self.stage: Path | None = None

    def __enter__(self) -> Path:
        target = check_out_dir(self.target, self.force, self.description)
        exists = target.is_dir()
        if exists:
            where = target
        else:
            where = target.parent if str(target.parent) else Path(".")
            try:
                where.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InputError(f"cannot write into {target}: {_reason(exc)}") from None
        remove_stale_temps(where)
        try:
            self.stage = Path(tempfile.mkdtemp(prefix=_temp_prefix(target.name or "out"),
                                               suffix=".tmp", dir=where))
        except OSError as exc:
            raise InputError(f"cannot write into {target}: {_reason(exc)}") from None
        _register(self.stage)
        return self.stage

    def __exit__(self, exc_type, exc, tb) -> None:
        stage = self.stage
        try:
            if exc_type is None:
                self._commit()
        finally:
            if stage is not None and stage.exists():
                shutil.rmtree(stage, ignore_errors=True)
            _unregister(stage)

    def _commit(self) -> None:
        """Move the staged files in with SIGTERM/SIGHUP held back, so that a signal
        arrives before the first rename or after the last, never between."""
        held = [getattr(signal, n) for n in ("SIGTERM", "SIGHUP", "SIGINT") if hasattr(signal, n)]
        try:
            old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, held)
        except (AttributeError, ValueError, OSError):
            old_mask = None
        try:
            self._move_in()
        finally:
            if old_mask is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

    def _move_in(self) -> None:
        stage, target = self.stage, self.target
        files = sorted(e for e in os.listdir(stage) if e != MARKER)
        manifest = {"written_by": "hwprune", "description": self.description, "files": files}
        write_atomic(stage / MARKER, json.dumps(manifest, indent=1) + "\n")
        try:
            if not target.exists():
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(stage, 0o777 & ~umask)       # mkdtemp made it 0700
                try:
                    os.rename(stage, target)
                    return
                except OSError as exc:
                    if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                        raise
            earlier = _manifest(target) or {}
            # Files of an earlier run of the same verb that this run did not write are
            # stale; another verb's files (written beside with --force) are left alone.
            old = earlier.get("files", []) if earlier.get("description") == self.description else []
            if not isinstance(old, list):
                old = []
            for name in files:
                os.replace(stage / name, target / name)
            os.replace(stage / MARKER, target / MARKER)
            for name in old:
                if isinstance(name, str) and name not in files and "/" not in name \
                        and name not in (MARKER, "", ".", ".."):
                    try:
                        os.unlink(target / name)
                    except OSError:
                        pass
        except OSError as exc:
            raise InputError(f"cannot write into {target}: {_reason(exc)}") from None
