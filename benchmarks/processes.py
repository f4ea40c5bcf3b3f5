"""The processes a benchmark measures against: the simulator, the real exporter CLI and a static HTTP server.

Each runs in a process of its own, so that its CPU never shares a GIL with the code being measured.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from exporter.simulator import Simulator

ROOT = Path(__file__).resolve().parent.parent
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The simulator's statistics the harness may ask for through the control pipe.
_QUERIES = frozenset({"count", "max_requests_in_window", "reset_stats"})


def assessment_id(region_index: int, n: int) -> str:
    """A valid assessment id, unique across the benchmark's regions (of every account)."""
    return f"00000000-0000-4000-8000-{region_index * 1_000_000 + n:012d}"


def access_key(profile: int) -> str:
    """The access key id of the named profile p<profile> that ExporterProcess writes."""
    return f"benchmark{profile}"


def _simulator_main(
    conn: Connection,
    regions: dict[str, int],
    accounts: dict[str, dict[str, int]],
    latency: float,
    framework_controls: int,
) -> None:
    from exporter.simulator import Insights, Simulator

    simulator = Simulator(latency=latency, framework_controls=framework_controls)
    # The default account first, then the added ones, each with its regions' assessment counts.
    layout = [(simulator, regions)] + [
        (simulator.add_account(key, f"{100_000_000_000 + a:012d}"), its_regions)
        for a, (key, its_regions) in enumerate(accounts.items())
    ]
    day = datetime(2026, 11, 23, tzinfo=UTC)
    places = [(account, region, count) for account, its_regions in layout for region, count in its_regions.items()]
    for r, (account, region, count) in enumerate(places):
        for n in range(count):
            # A distinct lastUpdated for every assessment: the worst case for rendering the ages.
            updated = day - timedelta(seconds=n * 61.25)
            insights = Insights(n % 50, 100 + n, n % 7, n % 11, 40 + n % 200, updated)
            tags = {"team": f"team-{n % 7}", "cost-center": f"cc-{n % 13}"}
            account.add_assessment(region, assessment_id(r, n), f"Assessment {r}-{n}", insights=insights, tags=tags)
    serve(conn, simulator)


def serve(conn: Connection, simulator: Simulator) -> None:
    """Start `simulator`, send its URL, then answer the harness's queries (`_QUERIES`, and "first_request": when
    the first request arrived) through `conn` until it says "stop"."""
    simulator.start()
    conn.send(simulator.url)
    while True:
        name, args = conn.recv()
        if name == "stop":
            simulator.stop()
            conn.send(None)
            return
        if name == "first_request":
            requests = simulator.requests()
            conn.send(requests[0].at if requests else None)
        else:
            conn.send(getattr(simulator, name)(*args) if name in _QUERIES else None)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # After the command name: state is field 3 of stat(5), utime 14 and stime 15.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def memory_bytes(pid: int, field: str = "VmRSS") -> int:
    """A memory figure of /proc/<pid>/status: VmRSS (resident now) or VmHWM (resident at its peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


# Every module the exporter imports (through its CLI), and one Audit Manager client; then wait for stdin to close.
_FLOOR = """
import sys
import exporter.cli
from exporter.aws import new_session
session = new_session(aws_access_key_id="floor", aws_secret_access_key="floor", region_name="us-east-1")
client = session.client("auditmanager", endpoint_url="http://127.0.0.1:9")
print("ready", flush=True)
sys.stdin.read()
"""


class FloorProcess:
    """The floor of the exporter's memory, in a process of its own: Python with the exporter's imports and one
    client, polling nothing and serving nothing."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _FLOOR], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline() != b"ready\n":
            raise RuntimeError("the floor process did not start")

    def memory_bytes(self, field: str = "VmRSS") -> int:
        return memory_bytes(self.process.pid, field)

    def cpu_seconds(self) -> float:
        """The CPU time of the imports and the one client."""
        return cpu_seconds(self.process.pid)

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(10)


class SimulatorProcess:
    """An `exporter.simulator.Simulator` with `regions[region]` tagged assessments each, whose frameworks have
    `framework_controls` controls, in a process of its own; on the same endpoint, each access key of `accounts` is an
    account of its own, with `accounts[key][region]` assessments each.

    The assessment ids (`assessment_id(r, n)`) number the (account, region) places in order from 0: the default
    account's regions first, then each added account's. Statistics count the requests of every account.
    """

    def __init__(
        self,
        regions: dict[str, int],
        latency: float,
        framework_controls: int = 0,
        accounts: dict[str, dict[str, int]] | None = None,
    ) -> None:
        self._start(_simulator_main, regions, accounts or {}, latency, framework_controls)

    def _start(self, main: Callable[..., None], *args: Any) -> None:
        """Run `main(conn, *args)` (a module-level function that builds a simulator and `serve`s it) in a process
        of its own."""
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=main, args=(child, *args), daemon=True)
        self._process.start()
        self.url: str = self._conn.recv()

    def _ask(self, name: str, *args: Any) -> Any:
        self._conn.send((name, args))
        return self._conn.recv()

    def first_request(self) -> float:
        """When (time.monotonic(), the same clock in every process) the first request arrived."""
        return float(self._ask("first_request"))

    def count(self, operation: str | None = None, region: str | None = None) -> int:
        """Requests the simulator answered, optionally of one operation and/or region."""
        return int(self._ask("count", operation, region))

    def max_requests_in_window(self, region: str | None = None) -> int:
        """The most requests that arrived in any one-second window, optionally in one region."""
        return int(self._ask("max_requests_in_window", 1.0, region))

    def reset_stats(self) -> None:
        """Forget the requests answered so far."""
        self._ask("reset_stats")

    def wait_quiet(self, latency: float) -> None:
        """Wait until no request has come for a while (ten latencies, at least 1 s): the exporter is done with its
        calls."""
        quiet = max(1.0, 10 * latency)
        seen = -1
        while (count := self.count()) != seen:
            seen = count
            time.sleep(quiet)

    def stop(self) -> None:
        """Stop serving and end the process."""
        self._ask("stop")
        self._process.join(5)


Answers = dict[tuple[bool, bool], tuple[bytes, str]]
"""(OpenMetrics asked for, gzip asked for) -> (body, Content-Type)"""


def _static_main(conn: Connection, answers: Answers) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # As the exporter's server does: without it, Nagle's algorithm holds the end of each body for the
        # client's delayed ACK (~40 ms), and that would be all either server measured.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            openmetrics = "openmetrics" in self.headers.get("Accept", "")
            compressed = "gzip" in self.headers.get("Accept-Encoding", "")
            body, content_type = answers[openmetrics, compressed]
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if compressed:
                self.send_header("Content-Encoding", "gzip")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    conn.send(server.server_address[1])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    conn.recv()
    server.shutdown()


class StaticServerProcess:
    """The floor: a `ThreadingHTTPServer` in its own process answering every GET with fixed bytes, picked by
    whether the request asks for OpenMetrics and for gzip."""

    def __init__(self, answers: Answers) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_static_main, args=(child, answers), daemon=True)
        self._process.start()
        self.port: int = self._conn.recv()

    def stop(self) -> None:
        self._conn.send("stop")
        self._process.join(5)


class ExporterProcess:
    """The real exporter (`python -m exporter --config.file ...`) in a process of its own, against the simulator."""

    def __init__(
        self, config: dict[str, Any], port: int, profiles: int = 0, log_level: str = "warn", root: Path = ROOT
    ) -> None:
        """`profiles` named profiles `p0`, `p1`, … go in the shared credentials file, with access key ids
        `access_key(n)`, for targets that differ by their profile (an account each, in the simulator's `accounts`).
        `root` is the checkout whose exporter runs (another revision's, to compare with)."""
        self._dir = tempfile.TemporaryDirectory(prefix="benchmarks-")
        directory = Path(self._dir.name)
        (directory / "aws-credentials").write_text(
            "".join(
                f"[p{n}]\naws_access_key_id = {access_key(n)}\naws_secret_access_key = benchmark\n"
                for n in range(profiles)
            ),
            encoding="utf-8",
        )
        config_path = directory / "config.yml"
        config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        self._log_path = directory / "exporter.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ACCESS_KEY_ID="benchmark",
            AWS_SECRET_ACCESS_KEY="benchmark",
            AWS_EC2_METADATA_DISABLED="true",
            AWS_CONFIG_FILE=str(directory / "aws-config"),
            AWS_SHARED_CREDENTIALS_FILE=str(directory / "aws-credentials"),
        )
        args = [sys.executable, "-m", "exporter", "--config.file", str(config_path), "--log.level", log_level]
        args += ["--web.listen-address", f"127.0.0.1:{port}"]
        # Start-up times count from here (monotonic clock).
        self.started = time.monotonic()
        with self._log_path.open("wb") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def wait_ready(self, timeout: float) -> float:
        """Wait until /readyz answers 200, that is until the first poll cycle has finished; return the seconds since
        the process started."""
        return self.wait_for("/readyz", timeout)

    def wait_for(self, path: str, timeout: float) -> float:
        """Wait until `path` answers 200; return the seconds since the process started."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the exporter exited early:\n{self.logs()}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=2) as response:
                    if response.status == 200:
                        return time.monotonic() - self.started
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.02)
        raise RuntimeError(f"{path} did not answer 200 within {timeout} s:\n{self.logs()}")

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the process so far."""
        return cpu_seconds(self.process.pid)

    def memory_bytes(self, field: str = "VmRSS") -> int:
        """A memory figure of the process: VmRSS (resident now) or VmHWM (resident at its peak)."""
        return memory_bytes(self.process.pid, field)

    def threads(self) -> int:
        """Threads of the process now, from /proc/<pid>/task."""
        return len(os.listdir(f"/proc/{self.process.pid}/task"))

    def open_files(self) -> int:
        """Open file descriptors of the process now (sockets included), from /proc/<pid>/fd."""
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def logs(self) -> str:
        return self._log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._dir.cleanup()
