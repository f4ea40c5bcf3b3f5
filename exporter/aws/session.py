"""boto3 sessions for a target: its credentials (the standard chain, a profile, or an assumed role), built on one
copy of botocore's parsed service data shared by the whole process."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

import boto3
import botocore.credentials
import botocore.exceptions
import botocore.hooks
import botocore.session

from exporter.config import Target

SessionFactory = Callable[[Target], boto3.Session]

# The service models and endpoint rules botocore parses from its JSON files, read once and shared by every
# session: each session would otherwise parse and keep its own copy, about 9 MB per target.
_SHARED_LOADER = botocore.session.get_session().get_component("data_loader")
# botocore's built-in event handlers, registered once: each session starts from a copy (as each client starts from a
# copy of its session's), about a fifth of the CPU of registering them all again.
_BUILTIN_HANDLERS = botocore.hooks.HierarchicalEmitter()
botocore.session.Session(event_hooks=_BUILTIN_HANDLERS)


def _botocore_session() -> botocore.session.Session:
    core = botocore.session.Session(event_hooks=copy.copy(_BUILTIN_HANDLERS), include_builtin_handlers=False)
    core.register_component("data_loader", _SHARED_LOADER)
    return core


def new_session(**kwargs: Any) -> boto3.Session:
    """A boto3 Session (same arguments) whose botocore session shares the process's parsed service data."""
    return boto3.Session(botocore_session=_botocore_session(), **kwargs)


def unknown_profiles(targets: Iterable[Target]) -> list[str]:
    """The profiles the targets name that the AWS config and credentials files do not define, in config order:
    checked at start, since the sessions are built later, by the poll."""
    known = set(botocore.session.Session().available_profiles)
    return list(dict.fromkeys(t.profile for t in targets if t.profile is not None and t.profile not in known))


def default_session(target: Target) -> boto3.Session:
    """A session from boto3's standard credential chain (environment, profile, web identity, instance role),
    or, with `role_arn`, one whose credentials come from assuming that role with the chain's credentials."""
    source = new_session(profile_name=target.profile, region_name=target.region)
    if target.role_arn is None:
        return source
    return assumed_role_session(source, target)


class _AssumeRoleProvider(botocore.credentials.CredentialProvider):
    """Credentials of an assumed role, fetched on first use and refreshed by botocore before they expire."""

    METHOD = "assume-role"

    def __init__(self, source: boto3.Session, target: Target) -> None:
        self._source = source
        self._role_arn = target.role_arn
        self._extra_args = {"RoleSessionName": target.session_name}
        if target.external_id is not None:
            self._extra_args["ExternalId"] = target.external_id

    def load(self) -> botocore.credentials.DeferredRefreshableCredentials:
        return botocore.credentials.DeferredRefreshableCredentials(self._fetch, self.METHOD)

    def _fetch(self) -> dict[str, Any]:
        # Asked for at every refresh, so source credentials that refresh themselves (IRSA, instance role) stay valid.
        credentials = self._source.get_credentials()
        if credentials is None:
            raise botocore.exceptions.NoCredentialsError()
        fetcher = botocore.credentials.AssumeRoleCredentialFetcher(
            client_creator=self._source.client,
            source_credentials=credentials,
            role_arn=self._role_arn,
            extra_args=self._extra_args,
        )
        return fetcher.fetch_credentials()


def assumed_role_session(source: boto3.Session, target: Target) -> boto3.Session:
    """A session acting as `target.role_arn`, assumed through STS with `source`'s credentials."""
    core = _botocore_session()
    core.register_component(
        "credential_provider", botocore.credentials.CredentialResolver([_AssumeRoleProvider(source, target)])
    )
    return boto3.Session(botocore_session=core, region_name=target.region)
