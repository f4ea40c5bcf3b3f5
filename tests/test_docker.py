"""Dockerfile and .dockerignore: hadolint finds nothing, the image is a two-stage build of the wheel into a pinned
slim Python, runs as a fixed non-root uid with a working health check. No Docker engine is needed.
(tests/test_compose.py checks docker-compose.yml.)"""

from __future__ import annotations

import http.server
import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import pytest

from exporter.cli import DEFAULT_PORT
from tests.conftest import require_binary

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
CONFIG_FILE = "/etc/auditmanager-exporter/config.yml"


# ---- a small Dockerfile reader


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def instructions() -> list[Instruction]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    found = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, args = stripped.partition(" ")
            found.append(Instruction(keyword.upper(), " ".join(args.split())))
    return found


def stages() -> list[list[Instruction]]:
    """The instructions of each stage, each starting with its FROM."""
    result: list[list[Instruction]] = []
    for instruction in instructions():
        if instruction.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def base_image(stage: list[Instruction]) -> str:
    """The stage's FROM image with global ARG defaults substituted."""
    defaults = {}
    for instruction in instructions():
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG" and "=" in instruction.args:
            name, value = instruction.args.split("=", 1)
            defaults[name] = value
    image = stage[0].args.split()[0]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: defaults[m.group(1) or m.group(2)], image)


def final(keyword: str) -> list[Instruction]:
    return [instruction for instruction in stages()[-1] if instruction.keyword == keyword]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(item, str) for item in value), args
    return value


def healthcheck_command() -> list[str]:
    (healthcheck,) = final("HEALTHCHECK")
    options, _, command = healthcheck.args.partition("CMD ")
    assert all(option.startswith("--") for option in options.split()), options
    return exec_form(command)


# ---- Dockerfile


def test_hadolint_finds_no_issue_in_the_dockerfile(tmp_path: Path) -> None:
    hadolint = require_binary("hadolint")
    result = subprocess.run(
        [
            hadolint,
            "--no-color",
            "--format",
            "json",
            "--failure-threshold",
            "style",
            "--disable-ignore-pragma",
            str(DOCKERFILE),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,  # no .hadolint.yaml can silence a rule
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == []


def test_hadolint_check_reports_a_bad_dockerfile(tmp_path: Path) -> None:
    hadolint = require_binary("hadolint")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n", encoding="utf-8")
    result = subprocess.run(
        [hadolint, "--no-color", "--format", "json", str(bad)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert {issue["code"] for issue in json.loads(result.stdout)} >= {"DL3007", "DL3013"}


def test_image_is_built_in_two_stages_on_a_pinned_slim_python() -> None:
    build, runtime = stages()
    assert re.search(r"\bAS build$", build[0].args, re.IGNORECASE)
    for stage in (build, runtime):
        assert re.fullmatch(r"python:3\.1[12]\.\d+-slim(-\w+)?", base_image(stage)), base_image(stage)


def test_build_stage_builds_wheels_and_runtime_installs_the_exporter_wheel_from_it() -> None:
    build, _ = stages()
    assert any("pip wheel" in i.args for i in build if i.keyword == "RUN")
    (install,) = [i for i in final("RUN") if "pip install" in i.args]
    assert "from=build" in install.args
    assert "--no-index" in install.args
    assert re.search(r"auditmanager_exporter-\S*\.whl", install.args)


def test_image_runs_as_a_fixed_non_root_uid() -> None:
    (user,) = final("USER")
    uid, _, gid = user.args.partition(":")
    assert uid.isdigit() and int(uid) > 0, user.args
    assert gid.isdigit() and int(gid) > 0, user.args
    assert any(f"--uid {uid}" in i.args for i in final("RUN"))


def test_image_exposes_the_exporters_default_port() -> None:
    assert [i.args for i in final("EXPOSE")] == [str(DEFAULT_PORT)]


def test_entrypoint_is_the_console_script_reading_the_config_from_etc() -> None:
    (entrypoint,) = final("ENTRYPOINT")
    command = exec_form(entrypoint.args)
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert command[0] in scripts
    assert f"--config.file={CONFIG_FILE}" in command[1:]
    assert not final("CMD")


def test_healthcheck_is_the_exporters_own_probe_not_curl() -> None:
    command = healthcheck_command()
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert command == [next(iter(scripts)), "--healthcheck"]


@pytest.fixture
def health_server() -> Iterator[tuple[http.server.HTTPServer, list[int]]]:
    status = [200]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status[0] if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            """Quiet."""

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, status
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_healthcheck_command_succeeds_only_when_healthz_answers_200(
    health_server: tuple[http.server.HTTPServer, list[int]], status: int, healthy: bool
) -> None:
    server, answer = health_server
    answer[0] = status
    address = f"127.0.0.1:{server.server_address[1]}"
    command = [sys.executable, "-m", "exporter", *healthcheck_command()[1:], "--web.listen-address", address]
    result = subprocess.run(command, capture_output=True, check=False, timeout=30, cwd=ROOT)
    assert (result.returncode == 0) is healthy, result.stderr


# ---- .dockerignore and the build context


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in dockerignore_patterns():
        negate = pattern.startswith("!")
        glob = pattern.removeprefix("!").strip("/")
        forms = {glob, glob.removeprefix("**/")}
        if any(fnmatch(candidate, form) for candidate in candidates for form in forms):
            excluded = not negate
    return excluded


def copy_sources() -> list[str]:
    sources = []
    for stage in stages():
        for instruction in stage:
            if instruction.keyword == "COPY" and "--from" not in instruction.args:
                sources += [source.rstrip("/") for source in shlex.split(instruction.args)[:-1]]
    return sources


def test_dockerignore_keeps_every_file_the_dockerfile_copies() -> None:
    assert copy_sources()
    for source in copy_sources():
        assert (ROOT / source).exists(), source
        assert not ignored(source), source
    assert not ignored("exporter/cli.py")


@pytest.mark.parametrize(
    "path", ["tests/test_docker.py", ".git/HEAD", ".venv/bin/python", "exporter/__pycache__/x.pyc"]
)
def test_dockerignore_keeps_other_files_out_of_the_build_context(path: str) -> None:
    assert ignored(path)


def test_build_stage_sources_build_a_wheel_with_the_entrypoint_script(tmp_path: Path) -> None:
    """What the build stage does, without Docker: the copied sources alone make a wheel whose console script
    is the image's ENTRYPOINT and which holds the whole package (the demo's simulator included)."""
    context = tmp_path / "src"
    for source in copy_sources():
        origin = ROOT / source
        files = [origin] if origin.is_file() else [p for p in origin.rglob("*") if p.is_file()]
        for file in files:
            relative = file.relative_to(ROOT).as_posix()
            if not ignored(relative):
                (context / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, context / relative)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-cache-dir",
            "--quiet",
            "--wheel-dir",
            str(tmp_path / "wheels"),
            str(context),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "wheels").glob("auditmanager_exporter-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    (entrypoint,) = final("ENTRYPOINT")
    script = exec_form(entrypoint.args)[0]
    assert re.search(rf"^{re.escape(script)} = exporter\.cli:main$", entry_points, re.MULTILINE), entry_points
    assert {
        "exporter/cli.py",
        "exporter/simulator/__init__.py",
        "exporter/simulator/auditmanager.py",
        "exporter/__main__.py",
    } <= set(names)
    assert not [name for name in names if name.startswith("tests/")]
