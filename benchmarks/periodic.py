"""Work repeated every few seconds in a thread while a benchmark runs (a busy share sampled,
processes counted): started and stopped as a context manager, ended by its first failure,
which it keeps in a line instead of raising into the benchmark."""

from __future__ import annotations

import threading
from typing import Self


class Periodic:
    """Calls ``_tick`` every ``every_s`` in a thread while entered: first at once if
    ``at_start``, once more on exit if ``at_exit``. An exception ends the calls, kept in
    ``error`` (one line); an ``error`` set before entering (a subclass that could not set
    up) means no calls at all."""

    def __init__(self, every_s: float, *, at_start: bool, at_exit: bool) -> None:
        self.every_s, self.at_start, self.at_exit = every_s, at_start, at_exit
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _tick(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        if self.error:
            return
        try:
            if self.at_start and not self._stop.is_set():  # not if left before it began
                self._tick()
            while not self._stop.wait(self.every_s):
                self._tick()
            if self.at_exit:
                self._tick()
        except Exception as error:  # a failed call ends the repetition, not the benchmark
            self.error = " ".join(f"{type(error).__name__}: {error}".split())[:200]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
