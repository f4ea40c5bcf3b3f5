"""The clients of one AWS service for the configured targets that poll it, kept across reloads for targets whose
connection did not change (with their rate-limiter budgets), and closed when a reload replaces them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, Protocol, TypeVar

from exporter.config import Config, Target


class ServiceClient(Protocol):
    def close(self) -> None: ...


_C = TypeVar("_C", bound=ServiceClient)
_ClientKey = tuple[object, ...]


def client_key(target: Target, config: Config) -> _ClientKey:
    """Everything a client is built from: equal keys make interchangeable clients."""
    return (
        target.region,
        target.endpoint_url,
        target.profile,
        target.role_arn,
        target.external_id,
        target.session_name,
        target.max_concurrency,
        target.max_requests_per_second,
        config.connect_timeout,
        config.read_timeout,
        config.max_attempts,
    )


class Clients(Generic[_C]):
    """One client per expanded target of the current config that polls the service (`source`, one of the config's
    SOURCES); None for the other targets."""

    def __init__(self, source: str, factory: Callable[[Target, Config], _C]) -> None:
        self._source = source
        self._factory = factory
        self._clients: list[tuple[_ClientKey, _C]] = []

    def build(self, config: Config) -> tuple[list[_C | None], list[_C]]:
        """The clients for `config`, reusing the current ones where the key matches (the n-th target of a key gets
        the n-th client of it), and the former clients left over, for the caller to close once it switched. If
        building a client fails, the ones built so far are closed and nothing changes."""
        spare = list(self._clients)
        built: list[tuple[_ClientKey, _C]] = []
        clients: list[_C | None] = []
        try:
            for target in config.expanded_targets():
                if self._source not in target.sources:
                    clients.append(None)
                    continue
                key = client_key(target, config)
                match = next((i for i, (known, _) in enumerate(spare) if known == key), None)
                built.append(spare.pop(match) if match is not None else (key, self._factory(target, config)))
                clients.append(built[-1][1])
        except BaseException:
            for key, client in built:
                if (key, client) not in self._clients:
                    client.close()
            raise
        self._clients = built
        return clients, [client for _, client in spare]

    def close(self) -> None:
        for _, client in self._clients:
            client.close()


class AllClients:
    """The clients of every registered source for the current config."""

    def __init__(self, sources: Mapping[str, Clients[Any]]) -> None:
        self._sources = dict(sources)

    def build(self, config: Config) -> tuple[dict[str, list[Any]], list[ServiceClient]]:
        """Every source's clients by name, and the former clients left over (see `Clients.build`)."""
        built: dict[str, list[Any]] = {}
        replaced: list[ServiceClient] = []
        for name, clients in self._sources.items():
            built[name], spare = clients.build(config)
            replaced += spare
        return built, replaced

    def close(self) -> None:
        for clients in self._sources.values():
            clients.close()
