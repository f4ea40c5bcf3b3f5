"""Checking raw YAML values against a table of fields, collecting every problem instead of stopping at the first,
and the checks of plain values (strings, numbers, durations, booleans) the tables use."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from exporter.config.durations import parse_duration

# A field's check: the value, and the path to name in a problem; it reports problems to the reader.
Check = Callable[["Reader", object, str], object]
# A field: its check and its default. No default: required; a default of None: the key may also be null.
Fields = Mapping[str, tuple[Check, object]]
REQUIRED = object()
_T = TypeVar("_T")


def fields_of(record: type, checks: Mapping[str, Check]) -> Fields:
    """The fields of a config record: each key's check, with the record's own default for it (REQUIRED if none),
    so that a default is written once, on the record."""
    defaults = {
        field.name: field.default if field.default is not dataclasses.MISSING else REQUIRED
        for field in dataclasses.fields(record)
    }
    return {key: (check, defaults[key]) for key, check in checks.items()}


class Reader:
    """Checks raw YAML values against fields, collecting every problem instead of stopping at one."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def mapping(self, value: object, path: str, fields: Fields) -> dict[str, Any]:
        """The checked fields of a mapping; unknown keys, missing ones and bad values become problems."""
        if not isinstance(value, dict):
            self.fail(path, "must be a mapping")
            return {}
        prefix = f"{path}." if path else ""
        checked: dict[str, Any] = {}
        for key, item in value.items():
            if key not in fields:
                self.fail(f"{prefix}{key}", "unknown key")
                continue
            check, default = fields[key]
            if item is None and default is None:
                continue
            before = len(self.problems)
            result = check(self, item, f"{prefix}{key}")
            if len(self.problems) == before:
                checked[key] = result
        for key, (_, default) in fields.items():
            if default is REQUIRED and key not in value:
                self.fail(f"{prefix}{key}", "required")
        return checked

    def build(self, kind: Callable[..., _T], value: object, path: str, fields: Fields) -> _T:
        """`kind` made of the checked fields; only meaningful when no problem was found (else `parse` raises)."""
        before = len(self.problems)
        checked = self.mapping(value, path, fields)
        return kind(**checked) if len(self.problems) == before else cast(_T, None)

    def items(self, value: object, path: str, *, required: bool = False) -> list[Any]:
        if value is None and not required:
            return []
        if not isinstance(value, list):
            self.fail(path, "must be a list")
            return []
        if required and not value:
            self.fail(path, "must not be empty")
        return value


def string(*, pattern: Callable[[str], str] | None = None, max_length: int | None = None) -> Check:
    def check(reader: Reader, value: object, path: str) -> object:
        if not isinstance(value, str):
            reader.fail(path, "must be a string")
            return None
        if not value:
            reader.fail(path, "must not be empty")
            return None
        if max_length is not None and len(value) > max_length:
            reader.fail(path, f"longer than {max_length} characters")
            return None
        try:
            return pattern(value) if pattern else value
        except ValueError as error:
            reader.fail(path, str(error))
            return None

    return check


def number(kind: type, *, minimum: float = 0, inclusive: bool = False, maximum: float | None = None) -> Check:
    def check(reader: Reader, value: object, path: str) -> object:
        allowed = (int,) if kind is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, allowed):
            reader.fail(path, "must be an integer" if kind is int else "must be a number")
            return None
        if not math.isfinite(value):
            reader.fail(path, "must be a finite number")
            return None
        if value < minimum or (value == minimum and not inclusive):
            relation = "greater than or equal to" if inclusive else "greater than"
            reader.fail(path, f"must be {relation} {minimum}")
            return None
        if maximum is not None and value > maximum:
            reader.fail(path, f"must be less than or equal to {maximum}")
            return None
        return kind(value)

    return check


def duration(within: Callable[[float], float]) -> Check:
    def check(reader: Reader, value: object, path: str) -> object:
        try:
            return within(parse_duration(value))
        except ValueError as error:
            reader.fail(path, str(error))
            return None

    return check


def names(pattern: Callable[[str], str]) -> Check:
    """A list of names that each pass `pattern`, none twice."""

    def check(reader: Reader, value: object, path: str) -> object:
        items = reader.items(value, path)
        checked = tuple(string(pattern=pattern)(reader, name, f"{path}[{n}]") for n, name in enumerate(items))
        for n, name in enumerate(items):
            if name in items[:n]:
                reader.fail(f"{path}[{n}]", f"duplicate of {path}[{items.index(name)}] ({name})")
        return checked

    return check


def selection(reader: Reader, value: object, path: str, fields: Fields, what: str) -> dict[str, Any] | None:
    """The checked `names`, `discover`, `include` and `exclude` of a selection of `what`s; None if any is bad."""
    before = len(reader.problems)
    checked = reader.mapping(value, path, fields)
    if len(reader.problems) > before:
        return None
    if not checked.get("names") and not checked.get("discover"):
        reader.fail(path, f"name at least one {what}, or set discover: true")
    for key in ("include", "exclude"):
        if key in checked and not checked.get("discover"):
            reader.fail(f"{path}.{key}", f"needs discover: true (it filters discovered {what}s)")
    return checked


def boolean(reader: Reader, value: object, path: str) -> object:
    if not isinstance(value, bool):
        reader.fail(path, "must be true or false")
    return value
