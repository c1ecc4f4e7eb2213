"""sequences.json: an optional watchlist and settings file, strictly validated.

    {
      "watch": [{"table": "ak_animes", "column": "id_anime"}, {"table": "billing.invoices"}],
      "thresholds": {"warning": 0.75, "critical": 0.9},
      "exclude": ["audit.*", "*_tmp"],
      "schemas": ["public"]
    }

Every key is optional. A malformed file is reported as one line naming the file, the place and the
problem (ConfigError); it is never half-applied.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .model import Thresholds
from .text import one_line

DEFAULT_FILE = "sequences.json"


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class WatchEntry:
    table: str          # "table" (any schema) or "schema.table"
    column: str | None  # None: whatever column of the table draws from a sequence

    @property
    def schema(self) -> str | None:
        return self.table.split(".", 1)[0] if "." in self.table else None

    @property
    def table_name(self) -> str:
        return self.table.split(".", 1)[1] if "." in self.table else self.table

    @property
    def label(self) -> str:
        return f"{self.table}.{self.column}" if self.column else self.table


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    watch: tuple[WatchEntry, ...] = ()
    thresholds: Thresholds = Thresholds()
    exclude: tuple[str, ...] = ()
    schemas: tuple[str, ...] = ()


_TOP_KEYS = {"watch", "thresholds", "exclude", "schemas", "$comment"}


def _type_name(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _string_list(data, where: str, fail) -> tuple[str, ...]:
    if not isinstance(data, list):
        fail(where, f"expected a list of strings, got {_type_name(data)}")
    for i, item in enumerate(data):
        if not isinstance(item, str) or not item:
            fail(f"{where}[{i}]", f"expected a non-empty string, got {_type_name(item)}")
    return tuple(data)


def parse(data, path: Path | None = None) -> Config:
    name = str(path) if path else DEFAULT_FILE

    def fail(where: str, problem: str):
        raise ConfigError(one_line(f"{name}: {where}: {problem}"))

    if not isinstance(data, dict):
        fail("top level", f"expected an object, got {_type_name(data)}")
    for key in data:
        if key not in _TOP_KEYS:
            fail(key, f"unknown key (expected one of: {', '.join(sorted(_TOP_KEYS - {'$comment'}))})")

    watch = []
    raw_watch = data.get("watch", [])
    if not isinstance(raw_watch, list):
        fail("watch", f"expected a list, got {_type_name(raw_watch)}")
    for i, entry in enumerate(raw_watch):
        where = f"watch[{i}]"
        if isinstance(entry, str):
            entry = {"table": entry}
        if not isinstance(entry, dict):
            fail(where, f"expected an object like {{\"table\": \"t\", \"column\": \"id\"}}, got {_type_name(entry)}")
        for key in entry:
            if key not in ("table", "column"):
                fail(f"{where}.{key}", "unknown key (expected table, column)")
        table = entry.get("table")
        if not isinstance(table, str) or not table.strip():
            fail(f"{where}.table", f"expected a table name, got {_type_name(table)}")
        column = entry.get("column")
        if column is not None and (not isinstance(column, str) or not column.strip()):
            fail(f"{where}.column", f"expected a column name, got {_type_name(column)}")
        watch.append(WatchEntry(table=table, column=column))

    thresholds = Thresholds()
    raw_t = data.get("thresholds", {})
    if not isinstance(raw_t, dict):
        fail("thresholds", f"expected an object, got {_type_name(raw_t)}")
    values = {}
    for key, value in raw_t.items():
        if key not in ("warning", "critical"):
            fail(f"thresholds.{key}", "unknown key (expected warning, critical)")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
            fail(f"thresholds.{key}", f"expected a fraction between 0 and 1, got {json.dumps(value)}")
        values[key] = float(value)
    thresholds = Thresholds(**{**thresholds.__dict__, **values})
    if thresholds.warning > thresholds.critical:
        fail("thresholds", f"warning ({thresholds.warning}) is above critical ({thresholds.critical})")

    exclude = _string_list(data.get("exclude", []), "exclude", fail)
    schemas = _string_list(data.get("schemas", []), "schemas", fail)
    return Config(path=path, watch=tuple(watch), thresholds=thresholds, exclude=exclude, schemas=schemas)


def load(path: str | Path | None = None, cwd: Path | None = None) -> Config:
    """--config FILE (must exist), else ./sequences.json if present, else defaults."""
    if path is None:
        candidate = (cwd or Path.cwd()) / DEFAULT_FILE
        if not candidate.exists():
            return Config()
        path = candidate
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a seqtui config") from None
    return parse(data, path)
