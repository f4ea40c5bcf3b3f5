"""Who may ask: the web config's `basic_auth_users` (bcrypt, with a cache of good checks) and its `rate_limit`.

`basic_auth` and `request_bucket` read those two sections; `BasicAuth` and `RequestBucket` answer per request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import bcrypt

from exporter.config import parse_duration
from exporter.webconfig.fields import unknown_keys

_BCRYPT_HASH = re.compile(r"^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$")
CACHE_SIZE = 1024
# bcrypt's own range of costs (log2 of the rounds); outside it bcrypt refuses the hash.
MIN_BCRYPT_COST, MAX_BCRYPT_COST = 4, 31
RATE_LIMIT_KEYS = ("burst", "interval")


class BasicAuth:
    """Checks `Authorization: Basic` headers against bcrypt hashes.

    bcrypt is slow on purpose, so successful checks are remembered, keyed by an HMAC under a per-process random key
    (a plain hash of the password would be a fast hash an attacker with a memory dump could brute-force).
    """

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self._users = dict(users)
        self._key = secrets.token_bytes(32)
        self._cache: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()
        # An unknown user still costs one bcrypt check (against a configured user's hash, whatever the password,
        # the answer stays no), so response times do not reveal which users exist.
        self._decoy = next(iter(self._users.values()))

    def check(self, header: str | None) -> bool:
        """Whether `header` (the Authorization header's value, if any) names a user with the right password."""
        credentials = _credentials(header)
        if credentials is None:
            return False
        user, password = credentials
        hashed = None
        for name, user_hash in self._users.items():
            if hmac.compare_digest(name.encode(), user.encode()):
                hashed = user_hash
        if hashed is None:
            _bcrypt_matches(password, self._decoy)
            return False
        key = hmac.new(self._key, b"\0".join((user.encode(), password, hashed)), hashlib.sha256).digest()
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return True
        if not _bcrypt_matches(password, hashed):
            return False
        with self._lock:
            self._cache[key] = None
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return True


class RequestBucket:
    """The toolkit's `rate_limit` on incoming requests: a token bucket of `burst` requests, refilled by one every
    `interval` seconds. (Not the limiter of the exporter's own calls to AWS, which is in exporter.aws.)"""

    def __init__(self, interval: float, burst: int) -> None:
        self._interval = interval
        self._burst = burst
        self._tokens = float(burst)
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        """Take one token for a request; False (answer 429) when the bucket is empty."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(float(self._burst), self._tokens + (now - self._last) / self._interval)
            self._last = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True


def basic_auth(raw: object, problems: list[str]) -> BasicAuth | None:
    """The checker for `basic_auth_users`; None when no users are configured (as in the toolkit) or on problems."""
    where = "basic_auth_users"
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping of user names to bcrypt hashes")
        return None
    users: dict[str, bytes] = {}
    for user, hashed in raw.items():
        if not isinstance(user, str) or not user or ":" in user:
            problems.append(f"{where}: user names must be non-empty strings without ':'")
        elif not isinstance(hashed, str) or not _BCRYPT_HASH.match(hashed):
            # The value is a secret of sorts, so the message never quotes it.
            problems.append(f"{where}.{user}: not a bcrypt hash (like $2y$10$ followed by 53 characters)")
        elif not MIN_BCRYPT_COST <= int(hashed.split("$")[2]) <= MAX_BCRYPT_COST:
            problems.append(f"{where}.{user}: bcrypt cost must be {MIN_BCRYPT_COST} to {MAX_BCRYPT_COST}")
        else:
            users[user] = hashed.encode()
    return BasicAuth(users) if users and len(users) == len(raw) else None


def request_bucket(raw: dict[Any, Any], problems: list[str]) -> RequestBucket | None:
    """The bucket for the `rate_limit` section; None when it has no positive interval or has problems."""
    where = "rate_limit"
    before = len(problems)
    problems.extend(unknown_keys(raw, where, RATE_LIMIT_KEYS))
    burst = raw.get("burst")
    if burst is None:
        burst = 0
    if not isinstance(burst, int) or isinstance(burst, bool) or not 0 <= burst <= 1_000_000:
        problems.append(f"{where}.burst: must be a whole number from 0 to 1000000")
    interval = raw.get("interval")
    seconds = 0.0
    # The toolkit's own tests write `interval: 0` for no rate limit (YAML's 0 is Go's zero time.Duration).
    if interval is not None and not (type(interval) is int and interval == 0):
        try:
            seconds = parse_duration(interval)
        except ValueError as error:
            problems.append(f"{where}.interval: {error}")
    if len(problems) > before or seconds <= 0:
        return None
    return RequestBucket(seconds, burst)


def _bcrypt_matches(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:
        # bcrypt refuses passwords over 72 bytes rather than truncating them; no stored password is that long.
        return False


def _credentials(header: str | None) -> tuple[str, bytes] | None:
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    try:
        return user.decode(), password
    except UnicodeDecodeError:
        return None
