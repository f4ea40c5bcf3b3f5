"""The docs hold together: every relative link and anchor in README.md and docs/ resolves as GitHub renders it,
every config key in the code is in docs/configuration.md, every log message in docs/troubleshooting.md, and the
README stays a front door."""

from __future__ import annotations

import ast
import dataclasses
import re
import unicodedata
from pathlib import Path

import pytest

from exporter.config import AssessmentConfig, Config, TargetConfig
from tests.conftest import ROOT

DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_INLINE_CODE = re.compile(r"(`+).*?\1")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
_HTML_LINK = re.compile(r"<(?:a|img)\s[^>]*?(?:href|src)=\"([^\"]+)\"", re.IGNORECASE)


def prose_lines(path: Path) -> list[str]:
    """The file's lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: lowercase, punctuation dropped (hyphens and underscores kept), spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
    kept = "".join(c for c in text if c in "-_ " or unicodedata.category(c)[0] in "LNM")
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor in a Markdown file, with GitHub's -1, -2 … for repeated ones."""
    seen: dict[str, int] = {}
    result = set()
    for line in prose_lines(path):
        match = _HEADING.match(line)
        if not match:
            continue
        anchor = github_anchor(match.group(2))
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        result.add(anchor if count == 0 else f"{anchor}-{count}")
    return result


def links(path: Path) -> list[str]:
    """Every link target in a Markdown file's prose (inline, reference-style, and HTML a/img), code left out."""
    found = []
    for line in prose_lines(path):
        reference = _REFERENCE.match(line)
        if reference:
            found.append(reference.group(1))
            continue
        prose = _INLINE_CODE.sub("", line)
        found += _LINK.findall(prose) + _HTML_LINK.findall(prose)
    return found


def is_external(target: str) -> bool:
    return re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) is not None or target.startswith("//")


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    problems = []
    for target in links(path):
        if is_external(target):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            problems.append(f"{target}: no such file")
        elif not linked.is_relative_to(root):
            problems.append(f"{target}: outside the repository")
        elif anchor and (linked.suffix != ".md" or anchor not in anchors(linked)):
            problems.append(f"{target}: no heading with the anchor #{anchor} in {linked.relative_to(root)}")
    return problems


@pytest.mark.parametrize("path", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(path):
    assert broken_links(path) == []


def test_the_link_check_finds_a_missing_file_a_missing_anchor_and_ignores_code(tmp_path):
    (tmp_path / "other.md").write_text("# Other\n## Bad input\n## Bad input\n## `Alert` name, with: punctuation!\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md#bad-input) [again](other.md#bad-input-1) [alert](other.md#alert-name-with-punctuation)\n"
        "[gone](missing.md) [no anchor](other.md#nothing) [self](#title) [web](https://example.com/x.md)\n"
        "`[in code](missing-in-code.md)`\n```\n[fenced](missing-fenced.md)\n# not a heading\n```\n"
        '# Title\n<img src="gone.png">\n[ref]: ../outside.md\n'
    )
    assert broken_links(page, tmp_path) == [
        "missing.md: no such file",
        "other.md#nothing: no heading with the anchor #nothing in other.md",
        "gone.png: no such file",
        "../outside.md: no such file",
    ]
    (tmp_path.parent / "outside.md").write_text("# Outside\n")
    assert broken_links(page, tmp_path)[-1] == "../outside.md: outside the repository"
    assert "not-a-heading" not in anchors(page)


def test_every_config_key_in_the_code_is_in_the_configuration_reference():
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    keys = [f"`{field.name}`" for field in dataclasses.fields(Config) if field.name != "targets"]
    keys += [f"`targets[].{field.name}`" for field in dataclasses.fields(TargetConfig)]
    keys += [f"`targets[].assessments[].{field.name}`" for field in dataclasses.fields(AssessmentConfig)]
    assert len(keys) > 20
    assert [key for key in keys if key not in text] == []


# Helpers that log their first argument as the message, and a `message` keyword's default where they have one.
_LOGGING_HELPERS = {"log_aws_failure": 0, "report_unexpected": None, "failure_of": 3}


def log_messages() -> list[str]:
    """The message of every log call in the exporter's code: the first string argument of log.debug/info/warning/
    error/exception (of log.log after the level), the message of the logging helpers, the default of any
    `message` parameter, and the `log_message` of the sources' tasks and listings."""
    messages = []
    for source in sorted((ROOT / "exporter").rglob("*.py")):
        if "simulator" in source.parts:
            continue
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef):
                arguments = node.args.args[len(node.args.args) - len(node.args.defaults) :]
                messages += [
                    default.value
                    for argument, default in zip(arguments, node.args.defaults, strict=True)
                    if argument.arg == "message" and isinstance(default, ast.Constant)
                ]
            # A source's log messages: the `log_message` of its tasks and its class's `list_log_message`.
            if isinstance(node, ast.keyword) and node.arg == "log_message" and isinstance(node.value, ast.Constant):
                messages.append(node.value.value)
            if isinstance(node, ast.AnnAssign | ast.Assign) and isinstance(node.value, ast.Constant):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id.endswith("log_message") for t in targets):
                    messages.append(node.value.value)
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            receiver = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            position = {"debug": 0, "info": 0, "warning": 0, "error": 0, "exception": 0, "log": 1}.get(name)
            keyword = next((k.value for k in node.keywords if k.arg == "message"), None)
            if receiver == "log" and position is not None:
                argument = node.args[position] if len(node.args) > position else None
            elif name in _LOGGING_HELPERS:
                index = _LOGGING_HELPERS[name]
                argument = keyword or (node.args[index] if index is not None and len(node.args) > index else None)
                if argument is None:
                    continue  # the helper's default message, collected from its definition
            else:
                continue
            if isinstance(argument, ast.Name):
                continue  # a helper passing its caller's message on: the caller's literal is checked
            assert isinstance(argument, ast.Constant), f"{source.name}:{node.lineno}: log message is not a literal"
            messages.append(argument.value)
    return messages


def test_every_log_message_is_explained_in_troubleshooting():
    text = (ROOT / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
    messages = log_messages()
    assert {"poll failed", "listening", "config reload failed; keeping the previous config"} <= set(messages)
    assert [message for message in messages if f"`{message}`" not in text] == []


def test_every_log_message_in_troubleshooting_is_still_logged_by_the_code():
    rows = [
        line.split("|")[2].strip()
        for line in (ROOT / "docs" / "troubleshooting.md").read_text(encoding="utf-8").splitlines()
        if re.match(r"^\| (debug|info|warn|error) \|", line) and "(logger `" not in line
    ]
    assert len(rows) > 10
    assert [row for row in rows if row.strip("`") not in log_messages()] == []


def test_the_readme_is_a_front_door_with_the_status_screenshot():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) <= 10 * 1024
    assert "](docs/status.png)" in readme
    assert (ROOT / "docs" / "status.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
