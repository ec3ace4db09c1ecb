"""A one-line progress bar on standard error for hwprune's long steps."""

from __future__ import annotations

import sys
import time


class Progress:
    """``Progress(total)``; call it once per step with a line saying what the step is.
    On a terminal the bar redraws in place; otherwise each step is one line."""

    def __init__(self, total: int, width: int = 24, stream=None):
        self.total = max(int(total), 1)
        self.done = 0
        self.width = width
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self.tty = getattr(self.stream, "isatty", lambda: False)()

    def __call__(self, message: str) -> None:
        self.done = min(self.done + 1, self.total)
        filled = int(self.width * self.done / self.total)
        elapsed = time.perf_counter() - self.start
        line = (f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} "
                f"{int(elapsed // 60)}m{int(elapsed % 60):02d}s {message}")
        if self.tty:
            self.stream.write("\r\033[K" + line[:160])
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.done < self.total:
            self.stream.write("\n")
            self.stream.flush()
