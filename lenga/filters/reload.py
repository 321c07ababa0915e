"""Hot reload of the filters file: re-read at the start of every micro-batch, no restart.

The file's (mtime, size) is checked every batch (one ``stat``); when it changed the text is read
and its sha256 compared, and only a new text is parsed and compiled. A bad edit (invalid YAML, a
predicate that does not compile, a registry that refuses the schema) is logged and the previous
valid filters stay in force: a typo never kills the stream. Only the first load raises, so a job
does not start with filters it cannot use.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from lenga.filters.config import FilterError, FilterSet, parse_filters, text_digest

log = logging.getLogger(__name__)

Compiled = TypeVar("Compiled")


class FilterReloader(Generic[Compiled]):
    """The filters currently in force, from ``path``; ``build`` turns a parsed FilterSet into what
    the stream uses (compiled predicates, registered schemas) and raises FilterError if it cannot."""

    def __init__(self, path: str | os.PathLike, build: Callable[[FilterSet], Compiled]):
        self.path = Path(path)
        self.build = build
        self.filters: FilterSet | None = None
        self.compiled: Compiled | None = None
        self.last_error: str | None = None
        self.reloads = 0
        self._stat: tuple[int, int] | None = None

    def current(self) -> tuple[FilterSet, Compiled]:
        """The filters to use now (reloaded if the file changed and the new version is valid)."""
        try:
            stat = self.path.stat()
            seen = (stat.st_mtime_ns, stat.st_size)
            if seen != self._stat:
                self._load(self.path.read_text(), seen)
        except (OSError, FilterError) as exc:
            if self.filters is None:
                raise FilterError(str(exc)) from exc
            if str(exc) != self.last_error:
                log.error("filters file %s: %s; keeping the previous filters (%s)", self.path, exc,
                          ", ".join(self.filters.names) or "none")
            self.last_error = str(exc)
        return self.filters, self.compiled

    def _load(self, text: str, seen: tuple[int, int]) -> None:
        self._stat = seen  # an invalid version is reported once, not every batch
        if self.filters is not None and text_digest(text) == self.filters.digest:
            return
        filters = parse_filters(text, str(self.path))
        compiled = self.build(filters)
        first = self.filters is None
        self.filters, self.compiled, self.last_error = filters, compiled, None
        if not first:
            self.reloads += 1
            log.warning("filters file %s reloaded: %s", self.path, ", ".join(filters.names) or "no filters")

