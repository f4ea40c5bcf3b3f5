"""A load generator for /metrics: scrapers on keep-alive HTTP/1.1 connections, each timing its requests."""

from __future__ import annotations

import http.client
import math
import threading
import time
from collections.abc import Sequence


def scrape_latencies(
    port: int, scrapers: int, seconds: float, headers: dict[str, str], path: str = "/metrics"
) -> list[float]:
    """Latencies (seconds) of back-to-back GETs with `headers` by `scrapers` threads, each on its own connection,
    for `seconds`.

    A latency runs from sending the request to having read the whole body.
    """
    barrier = threading.Barrier(scrapers)
    results: list[list[float]] = [[] for _ in range(scrapers)]
    errors: list[str] = []

    def scraper(latencies: list[float]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            # One request first, so connecting is not measured.
            _get(connection, path, headers)
            barrier.wait()
            deadline = time.perf_counter() + seconds
            while (started := time.perf_counter()) < deadline:
                _get(connection, path, headers)
                latencies.append(time.perf_counter() - started)
        except (OSError, http.client.HTTPException, RuntimeError) as error:
            errors.append(repr(error))
            barrier.abort()
        finally:
            connection.close()

    threads = [threading.Thread(target=scraper, args=(latencies,)) for latencies in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"scraping failed: {errors[0]}")
    return [latency for latencies in results for latency in latencies]


def _get(connection: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> bytes:
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    body = response.read()
    if response.status != 200:
        raise RuntimeError(f"GET {path} answered {response.status}")
    return body


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest value with at least `fraction` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]
