"""Reading a config: the file, its YAML, then every check; `ConfigError` lists every problem found, one line each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from exporter.config import rules
from exporter.config.model import Config, TargetConfig
from exporter.config.reader import Reader
from exporter.config.schema import CONFIG_FIELDS, TARGET_FIELDS


class ConfigError(Exception):
    """The config could not be loaded; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load(path: str | Path) -> Config:
    """Read and validate the YAML config at `path`. The problems of the file as a whole (unreadable, not YAML, not
    a mapping) are found here; those of its keys, by `parse`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read: {exc}"]) from None
    try:
        raw = _read_yaml(text)
    except (yaml.YAMLError, RecursionError) as exc:
        raise ConfigError([yaml_problem(exc)]) from None
    if raw is None:
        raise ConfigError(["the file is empty (comments only count as empty); start from config.example.yaml"])
    if not isinstance(raw, dict):
        raise ConfigError(["the top level must be a mapping of config keys"])
    return parse(raw)


def _read_yaml(text: str) -> Any:
    """The YAML's data, read by libyaml where PyYAML has it (a 1,000-target config takes 1.4 s to read in pure
    Python, and the server listens only once it is read); a document libyaml refuses is read again in pure Python,
    which says what is wrong in the same words everywhere."""
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            return yaml.load(text, Loader=fast)
        except yaml.YAMLError:
            pass
    return yaml.load(text, Loader=yaml.SafeLoader)


def parse(raw: dict[str, Any]) -> Config:
    """Validate an already-decoded config mapping."""
    reader = Reader()
    fields = reader.mapping(raw, "", CONFIG_FIELDS)
    raw_targets = reader.items(fields.pop("targets"), "targets", required=True) if "targets" in fields else []
    targets = tuple(
        reader.build(TargetConfig, target, f"targets[{t}]", TARGET_FIELDS) for t, target in enumerate(raw_targets)
    )
    reader.problems += rules.problems(raw)
    if reader.problems:
        raise ConfigError(reader.problems)
    return Config(targets=targets, **fields)


def yaml_problem(exc: yaml.YAMLError | RecursionError) -> str:
    """One line saying where the YAML is malformed and why, without quoting the file (which may hold secrets)."""
    if isinstance(exc, RecursionError):
        return "malformed YAML: nested too deeply"
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "not valid YAML"
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"malformed YAML{where}: {problem}"
