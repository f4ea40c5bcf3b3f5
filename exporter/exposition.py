"""The bytes /metrics serves, prepared ahead of the scrapes: Prometheus text 0.0.4 and OpenMetrics 1.0.0, plain
and gzipped. A scrape picks prepared parts and writes them.

- **The snapshot part** (every family of `collector.snapshot_families`, the bulk of the body) is rendered once per
  published snapshot, by a thread of its own: never in the thread that publishes, so never inside a lock the
  poller holds, and never in a scrape. A scrape that arrives while a newly published snapshot is being rendered
  waits for that render, so a scrape never goes back in time and /readyz never gets ahead of /metrics.
- **The live part** (API counters, the reload status, process and Python metrics: about 40 lines whatever the
  number of assessments) is rendered when the exporter's own counts or reload status changed since its last
  render, and otherwise at most once per `LIVE_MAX_AGE` second: concurrent scrapes share one render, and
  `process_*`/`python_*` values are at most that old.

The two formats differ only in a few families (counters name their family without `_total` in OpenMetrics), so
the runs of families both formats render alike are kept once and shared by both bodies. The gzip bodies are
gzip members back to back, which every gzip reader (Go's included) decodes as one stream.
"""

from __future__ import annotations

import gzip
import io
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as CONTENT_TYPE_OPENMETRICS
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector

from exporter.collector import ReloadCollector, live_families, snapshot_families
from exporter.snapshot import ApiCounters, ReloadStatus, Snapshot, SnapshotStore

log = logging.getLogger(__name__)

# How old the process and Python metrics of a scrape may be, in seconds.
LIVE_MAX_AGE = 1.0
# How long a scrape waits for the render of a snapshot published just before it, before it fails.
RENDER_WAIT_SECONDS = 60.0
_EOF = b"# EOF\n"
_GZIP_LEVEL = 6


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=_GZIP_LEVEL, mtime=0)


_EOF_GZIPPED = _gzip(_EOF)


@dataclass(frozen=True)
class _Families:
    """Adapts an iterable of families to what prometheus_client's `generate_latest` functions read."""

    families: Iterable[Metric]

    def collect(self) -> Iterable[Metric]:
        return self.families


def _render_text(family: Metric) -> bytes:
    return generate_latest(_Families((family,)))  # type: ignore[arg-type]


def _render_openmetrics(family: Metric) -> bytes:
    text = generate_openmetrics(_Families((family,)))
    # One family alone still ends the exposition; the body gets its single "# EOF" at the very end.
    return text.removesuffix(_EOF)


@dataclass(frozen=True)
class Prepared:
    """Families rendered once, in both formats, plain (a few parts, shared between the formats where they render
    alike) and gzipped (one bytes object per format)."""

    text: tuple[bytes, ...]
    openmetrics: tuple[bytes, ...]
    text_gzipped: bytes
    openmetrics_gzipped: bytes

    def parts(self, openmetrics: bool, gzipped: bool) -> tuple[bytes, ...]:
        if gzipped:
            return (self.openmetrics_gzipped if openmetrics else self.text_gzipped,)
        return self.openmetrics if openmetrics else self.text


def prepare(families: Iterable[Metric]) -> Prepared:
    """Render `families` once into both formats.

    Holds one family at a time (each is dropped once rendered), and appends the rendered bytes to runs whose buffer
    becomes the part without a copy, so that the peak is about the body plus one family.
    """
    text: list[bytes] = []
    openmetrics: list[bytes] = []
    shared, own_text, own_openmetrics = io.BytesIO(), io.BytesIO(), io.BytesIO()

    def flush() -> None:
        nonlocal shared, own_text, own_openmetrics
        if shared.tell():
            run = shared.getvalue()
            text.append(run)
            openmetrics.append(run)
            shared = io.BytesIO()
        if own_text.tell():
            text.append(own_text.getvalue())
            openmetrics.append(own_openmetrics.getvalue())
            own_text, own_openmetrics = io.BytesIO(), io.BytesIO()

    for family in families:
        plain, open_metrics = _render_text(family), _render_openmetrics(family)
        # Let the family's samples go before the next family is built.
        del family
        if plain == open_metrics:
            if own_text.tell():
                flush()
            shared.write(plain)
        else:
            if shared.tell():
                flush()
            own_text.write(plain)
            own_openmetrics.write(open_metrics)
        del plain, open_metrics
    flush()
    compressed = {id(part): _gzip(part) for part in (*text, *openmetrics)}
    return Prepared(
        tuple(text),
        tuple(openmetrics),
        b"".join(compressed[id(part)] for part in text),
        b"".join(compressed[id(part)] for part in openmetrics),
    )


@dataclass(frozen=True)
class Body:
    """One scrape's answer: prepared parts to write one after the other, and the headers that describe them."""

    parts: tuple[bytes, ...]
    content_type: str
    gzipped: bool


@dataclass(frozen=True)
class _Rendered:
    """The snapshot part of one snapshot, or why it could not be rendered."""

    snapshot: Snapshot | None
    prepared: Prepared | None
    error: Exception | None = None


@dataclass(frozen=True)
class _Live:
    """The live part, and what it was rendered from: the counts of changes it saw, and when."""

    changes: tuple[int, int]
    rendered_at: float
    prepared: Prepared

    def fresh(self, changes: tuple[int, int], now: float) -> bool:
        return self.changes == changes and now - self.rendered_at < LIVE_MAX_AGE


class Exposition:
    """The /metrics bodies of the current snapshot: its part prepared at publish time, the live part kept fresh."""

    def __init__(
        self,
        store: SnapshotStore,
        counters: ApiCounters,
        reload_status: ReloadStatus | None = None,
        runtime: Iterable[Collector] = (),
        clock: Callable[[], float] = time.monotonic,
        after_render: Callable[[], object] = lambda: None,
    ) -> None:
        """`after_render` runs in the render thread after each render of published snapshots (to hand the memory
        the render freed back to the OS, for example)."""
        self._store = store
        self._after_render = after_render
        self._counters = counters
        self._reload_status = reload_status
        self._live_collectors = ((ReloadCollector(reload_status),) if reload_status else ()) + tuple(runtime)
        self._clock = clock
        self._rendered_changed = threading.Condition()
        self._rendering = False
        snapshot = store.get()
        self._rendered = _Rendered(snapshot, prepare(snapshot_families(snapshot)))
        self._live_lock = threading.Lock()
        self._live: _Live | None = None
        store.subscribe(self._published)

    def body(self, openmetrics: bool = False, gzipped: bool = False) -> Body:
        """The current body in the format asked for: the snapshot part, the live part, and OpenMetrics's EOF."""
        snapshot_part = self.snapshot_part().parts(openmetrics, gzipped)
        live_part = self._live_part().parts(openmetrics, gzipped)
        if openmetrics:
            end = _EOF_GZIPPED if gzipped else _EOF
            return Body((*snapshot_part, *live_part, end), CONTENT_TYPE_OPENMETRICS, gzipped)
        return Body((*snapshot_part, *live_part), CONTENT_TYPE_PLAIN_0_0_4, gzipped)

    def snapshot_part(self) -> Prepared:
        """The prepared part of the current snapshot; waits if that snapshot is still being rendered."""
        rendered = self._rendered
        if rendered.snapshot is not self._store.get():
            deadline = time.monotonic() + RENDER_WAIT_SECONDS
            with self._rendered_changed:
                while (rendered := self._rendered).snapshot is not self._store.get():
                    if not self._rendered_changed.wait(deadline - time.monotonic()):
                        raise RuntimeError(f"the snapshot published is not rendered after {RENDER_WAIT_SECONDS:g} s")
        if rendered.prepared is None:
            raise RuntimeError(f"cannot render the snapshot: {rendered.error}")
        return rendered.prepared

    def _published(self, _: Snapshot) -> None:
        # Called by the publisher, maybe under its lock: only hand the work over to the render thread.
        with self._rendered_changed:
            if self._rendering:
                return
            self._rendering = True
        threading.Thread(target=self._render_published, name="render", daemon=True).start()

    def _render_published(self) -> None:
        """Render the latest published snapshot, and again while newer ones were published meanwhile."""
        while True:
            snapshot = self._store.get()
            # Scrapes wait for this render from now on, so the previous snapshot's bytes can go before the new
            # ones are built, instead of both being held at the peak.
            self._rendered = _Rendered(None, None)
            try:
                rendered = _Rendered(snapshot, prepare(snapshot_families(snapshot)))
            except Exception as error:
                log.error("cannot render the snapshot", extra={"error": f"{type(error).__name__}: {error}"})
                rendered = _Rendered(snapshot, None, error)
            with self._rendered_changed:
                self._rendered = rendered
                if snapshot is self._store.get():
                    self._rendering = False
                self._rendered_changed.notify_all()
                if not self._rendering:
                    break
        self._after_render()

    def _live_part(self) -> Prepared:
        """The live part, rendered again if the counters or the reload status changed, or if it is too old."""
        changes = (self._counters.changes, self._reload_status.changes if self._reload_status else 0)
        now = self._clock()
        live = self._live
        if live is not None and live.fresh(changes, now):
            return live.prepared
        with self._live_lock:
            live = self._live
            if live is None or not live.fresh(changes, now):
                families = [*live_families(self._counters)]
                for collector in self._live_collectors:
                    families.extend(collector.collect())
                live = _Live(changes, self._clock(), prepare(families))
                self._live = live
            return live.prepared
