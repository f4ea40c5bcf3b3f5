"""Checks of single values in the web config YAML, shared by its sections: each adds one line per problem."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any


def section(raw: dict[Any, Any], key: str, problems: list[str]) -> dict[Any, Any]:
    """The mapping under `key`; empty when absent, null or (a problem) not a mapping."""
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"{key}: must be a mapping")
        return {}
    return value


def unknown_keys(raw: dict[Any, Any], where: str, known: Collection[str]) -> Iterator[str]:
    """One problem for each key of `raw` (the section `where`, empty for the top level) not in `known`."""
    for key in raw:
        if key not in known:
            yield f"{where}.{key}: unknown key" if where else f"{key}: unknown key"


def boolean(raw: dict[Any, Any], where: str, key: str, default: bool, problems: list[str]) -> bool:
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        problems.append(f"{where}.{key}: must be true or false")
        return default
    return value


def string_list(raw: dict[Any, Any], where: str, key: str, problems: list[str]) -> list[str]:
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        problems.append(f"{where}.{key}: must be a list of strings")
        return []
    return value
