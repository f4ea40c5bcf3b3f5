"""Reading the fields of an AWS answer that the model check (exporter.answers) let through: what the model leaves
optional but a client needs raises `AnswerError`, counted as `MalformedResponse`."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any

from exporter.aws.errors import AnswerError


def field(source: object, key: str) -> Any:
    """`source[key]`, or AnswerError when the answer lacks it: botocore's models mark few output fields required, so
    the model check lets an answer without them through."""
    if not isinstance(source, dict) or source.get(key) is None:
        raise AnswerError(f"{key} is missing")
    return source[key]


def text(value: object) -> str:
    """`value`, which must be a string."""
    if not isinstance(value, str):
        raise AnswerError(f"{value!r} is not a string")
    return value


def shared(value: object) -> str:
    """A string that many answers repeat (a status, a framework, an account), kept once however many answers
    carried it, instead of once per answer for as long as the exporter keeps it."""
    return sys.intern(text(value))


def items(pages: Iterable[dict[str, Any]], key: str) -> Iterator[dict[str, Any]]:
    """The items of the list `key` of every page, in order."""
    for page in pages:
        listed = field(page, key)
        if not isinstance(listed, list):
            raise AnswerError(f"{key} is not a list")
        yield from listed
