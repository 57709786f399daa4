"""The table of model records the runtime serves, and its two locks::

    table = RecordTable()
    with table.lock:                      # guards the table and each record's versions (short holds)
        record = table.get("digits")
    with table.change_lock:               # one change of served versions at a time (scan, API, on-demand load)
        loader.sync(record)

``lock`` is re-entrant and held only for reads and swaps of the records' dictionaries, never across a
load; ``change_lock`` serializes whatever changes which versions are loaded, so that a repository scan,
a repository-API call and an on-demand load never race. Take ``change_lock`` first when both are needed.
"""

from __future__ import annotations

import threading

from modelpress.errors import NotFoundError
from modelpress.runtime.repository import check_name
from modelpress.runtime.served import ModelRecord

#: model names remembered as valid (checked once) at most: clients naming ever new models are checked each time
VALID_NAMES = 1024


class RecordTable:
    """Model name -> :class:`ModelRecord`, with the locks every part of the runtime shares."""

    def __init__(self) -> None:
        self.models: dict[str, ModelRecord] = {}
        self.lock = threading.RLock()
        self.change_lock = threading.Lock()
        self._valid_names: set[str] = set()

    def get(self, name: str) -> ModelRecord | None:
        """The record of ``name``, or None: ``table.get("digits")``."""
        with self.lock:
            return self.models.get(name)

    def lookup(self, name: str) -> ModelRecord:
        """The record of a model in the repository, or a 404 naming the models there::

            table.lookup("nope")     # NotFoundError: model 'nope' is not in the repository; models served: digits
        """
        if name not in self._valid_names:  # the name's check, once per name (a bounded set)
            check_name("model", name)
            if len(self._valid_names) < VALID_NAMES:
                self._valid_names.add(name)
        record = self.models.get(name)  # one dictionary read: atomic, no lock needed for it
        if record is not None:
            return record
        with self.lock:
            record = self.models.get(name)
            if record is None:
                known = ", ".join(sorted(self.models)) or "none"
                raise NotFoundError(f"model {name!r} is not in the repository; models served: {known}")
            return record

    def put(self, record: ModelRecord) -> None:
        with self.lock:
            self.models[record.name] = record

    def remove(self, name: str) -> None:
        with self.lock:
            self.models.pop(name, None)

    def names(self) -> list[str]:
        with self.lock:
            return sorted(self.models)

    def records(self) -> list[ModelRecord]:
        """A snapshot of the records, in name order."""
        with self.lock:
            return [self.models[name] for name in sorted(self.models)]

    def loaded(self, excluding: ModelRecord | None = None) -> list[ModelRecord]:
        """The records with at least one version loaded (``excluding`` one of them)."""
        with self.lock:
            return [r for r in self.models.values() if r.versions and r is not excluding]
