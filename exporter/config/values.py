"""The shapes of single config values (AWS names, ARNs, ids, URLs, patterns), each checked by a function that returns
the value or raises ValueError saying what is wrong. `REGION_PATTERN` is also what the sources check regions with."""

from __future__ import annotations

import re

UUID_PATTERN = re.compile(r"^[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}$")
# An AWS Region name (us-east-1, ap-southeast-2, us-gov-west-1); \Z, not $, so that a trailing newline fails too.
REGION_PATTERN = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+\Z")
ROLE_ARN_PATTERN = re.compile(r"^arn:aws[-a-z]*:iam::(\d{12}):role/[\w+=,.@/-]{1,512}$")
_SESSION_NAME_PATTERN = re.compile(r"^[\w+=,.@-]{2,64}$")
_EXTERNAL_ID_PATTERN = re.compile(r"^[\w+=,.@:/-]{2,1224}$")
CONFORMANCE_PACK_PATTERN = re.compile(r"^[a-zA-Z][-a-zA-Z0-9]{0,255}$")
AGGREGATOR_PATTERN = re.compile(r"[\w\-]{1,256}", re.ASCII)
# A Security Hub standard's id, as findings name it in Compliance.AssociatedStandards.
STANDARD_ID_PATTERN = re.compile(r"(standards|ruleset)/[a-z0-9][a-z0-9-]*/v/\d+(\.\d+)*")


def uuid(value: str) -> str:
    if not UUID_PATTERN.match(value):
        raise ValueError("not a UUID (lowercase, like 0a1b2c3d-0000-4000-8000-000000000000)")
    return value


def region(value: str) -> str:
    if not REGION_PATTERN.match(value):
        raise ValueError(f"not an AWS region name: {value!r}")
    return value


def http_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError(f"not an http(s) URL: {value!r}")
    return value


def role_arn(value: str) -> str:
    if not ROLE_ARN_PATTERN.match(value):
        raise ValueError(f"not an IAM role ARN (like arn:aws:iam::123456789012:role/name): {value!r}")
    return value


def session_name(value: str) -> str:
    if not _SESSION_NAME_PATTERN.match(value):
        raise ValueError("must be 2 to 64 letters, digits or +=,.@_- characters")
    return value


def external_id(value: str) -> str:
    if not _EXTERNAL_ID_PATTERN.match(value):
        raise ValueError("must be 2 to 1224 letters, digits or +=,.@:/_- characters")
    return value


def regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    return value


def pack_name(value: str) -> str:
    if not CONFORMANCE_PACK_PATTERN.match(value):
        raise ValueError(f"not a conformance pack name (a letter, then letters, digits or -): {value!r}")
    return value


def aggregator(value: str) -> str:
    if not AGGREGATOR_PATTERN.fullmatch(value):
        raise ValueError(f"not a configuration aggregator name (1 to 256 letters, digits, _ or -): {value!r}")
    return value


def standard_id(value: str) -> str:
    if not STANDARD_ID_PATTERN.fullmatch(value):
        raise ValueError(f"not a Security Hub standard id (like standards/pci-dss/v/3.2.1): {value!r}")
    return value
