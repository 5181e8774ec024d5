"""Officer authentication and jurisdiction for the officer API (grid/_api.py).

Passwords: scrypt hashes per officer id in a credentials file kept apart from the grid file
(the grid file is shared widely; it carries no secrets). Login hands out a random bearer
token once; the store keeps only its SHA-256 (``officer_tokens``), with an expiry and a
revocation time. Login attempts are rate-limited per officer id and per client address by
in-memory token buckets (one process: a restart forgets them).

Jurisdiction comes from the officer's roles in the grid file: a 网格员 acts on their
villages, a 网格长 on their township, the county duty officer on the whole county.

Nothing here logs a token or a password.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import yaml

from grid._store import Incident, IncidentStore
from tianwang.registry import Registry

TOKEN_TTL_S = 8 * 3600.0  # one shift
TOKEN_PREFIX = "tw_"  # makes a leaked token recognisable to secret scanners
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # 16 MiB, ~50 ms: cheap for a login, dear for guessing

Clock = Callable[[], datetime]


def _wall() -> datetime:
    return datetime.now(UTC)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$n$r$p$salt$hash`` (base64), the form of a credentials file entry."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, **_SCRYPT, dklen=32)
    n, r, p = _SCRYPT["n"], _SCRYPT["r"], _SCRYPT["p"]
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, n, r, p, salt, expected = encoded.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(
            password.encode("utf-8"),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(base64.b64decode(expected)),
        )
    except (ValueError, TypeError):
        return False  # a malformed entry never matches
    return hmac.compare_digest(digest, base64.b64decode(expected))


@cache
def _decoy() -> str:
    # Checked for an unknown officer so that the answer takes as long as for a known one.
    return hash_password(secrets.token_urlsafe(16))


def load_passwords(path: str | Path) -> dict[str, str]:
    """A credentials file: ``passwords: {officer_id: "scrypt$..."}`` (see hash_password)."""
    raw = yaml.safe_load(Path(path).read_text("utf-8")) or {}
    entries = raw.get("passwords") or {}
    if not isinstance(entries, dict):
        raise ValueError(f"{path}: passwords must map officer ids to scrypt hashes")
    return {str(k): str(v) for k, v in entries.items()}


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class LoginRefused(Exception):
    """Wrong officer id or password (deliberately not saying which)."""


class RateLimited(Exception):
    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"too many login attempts; retry after {retry_after_s:.0f} s")
        self.retry_after_s = retry_after_s


class TokenBuckets:
    """One token bucket per key: ``capacity`` attempts at once, then one per
    ``refill_s`` seconds. Past ``max_keys`` keys, refilled buckets are dropped and then the
    oldest, so a stream of made-up officer ids cannot grow memory without bound (the
    per-client buckets slow such a stream down first)."""

    def __init__(self, capacity: int, refill_s: float, max_keys: int = 10_000) -> None:
        self.capacity = capacity
        self.refill_s = refill_s
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def level(self, key: str, at: float) -> float:
        tokens, then = self._buckets.get(key, (float(self.capacity), at))
        return min(float(self.capacity), tokens + max(0.0, at - then) / self.refill_s)

    def wait_s(self, key: str, at: float) -> float:
        """0 if an attempt may go now, else how long until one may."""
        return max(0.0, (1.0 - self.level(key, at)) * self.refill_s)

    def take(self, key: str, at: float) -> None:
        self._buckets[key] = (self.level(key, at) - 1.0, at)
        if len(self._buckets) > self.max_keys:
            self._prune(at)

    def _prune(self, at: float) -> None:
        for key in [k for k in self._buckets if self.level(k, at) >= self.capacity]:
            del self._buckets[key]  # refilled: the same as never seen
        while len(self._buckets) > self.max_keys:
            del self._buckets[next(iter(self._buckets))]  # the longest kept goes first


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str  # shown once; only its digest is stored
    officer_id: str
    expires_at: datetime


class Tokens:
    """Logins, bearer tokens and their revocation, over the store's ``officer_tokens``."""

    def __init__(
        self,
        store: IncidentStore,
        passwords: dict[str, str],
        *,
        ttl_s: float = TOKEN_TTL_S,
        per_officer: TokenBuckets | None = None,
        per_client: TokenBuckets | None = None,
        clock: Clock = _wall,
    ) -> None:
        """Default limits: 5 attempts per officer id, then one a minute; 20 per client
        address, then one every 6 s."""
        self.store = store
        self.passwords = passwords
        self.ttl = timedelta(seconds=ttl_s)
        self.per_officer = per_officer or TokenBuckets(5, 60.0)
        self.per_client = per_client or TokenBuckets(20, 6.0)
        self.clock = clock

    def login(self, officer_id: str, password: str, client: str, allowed: bool) -> IssuedToken:
        """``allowed``: the officer is in the grid file; else refused like a wrong password."""
        at = self.clock().timestamp()
        wait = max(self.per_officer.wait_s(officer_id, at), self.per_client.wait_s(client, at))
        if wait > 0:
            raise RateLimited(wait)
        # Both buckets pay only when both allow: a blocked address does not drain an officer's.
        self.per_officer.take(officer_id, at)
        self.per_client.take(client, at)
        encoded = self.passwords.get(officer_id)
        matched = verify_password(password, encoded or _decoy())
        if not (matched and encoded is not None and allowed):
            raise LoginRefused
        return self.issue(officer_id)

    def issue(self, officer_id: str) -> IssuedToken:
        """A token without a password (a CLI, a test): 32 random bytes."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self.clock()
        expires = now + self.ttl
        self.store.add_token(token_digest(token), officer_id, now, expires)
        return IssuedToken(token, officer_id, expires)

    def officer(self, token: str) -> str | None:
        """The officer a live token belongs to; None if unknown, expired or revoked."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            return None
        record = self.store.token(token_digest(token))
        if record is None or record.revoked_at is not None:
            return None
        if record.expires_at <= self.clock():
            return None
        return record.officer_id

    def revoke(self, token: str) -> bool:
        return self.store.revoke_tokens(self.clock(), digest=token_digest(token)) > 0

    def revoke_officer(self, officer_id: str) -> int:
        """Every token of an officer (left the post, lost a phone)."""
        return self.store.revoke_tokens(self.clock(), officer_id=officer_id)


@dataclass(frozen=True, slots=True)
class Role:
    level: str  # village, township or county
    cell: str  # the cell's path, as a roster names it
    name: str


@dataclass(frozen=True, slots=True)
class Jurisdiction:
    """Where an officer may read and act: the union of the cells whose role they hold."""

    officer_id: str
    county: str
    whole_county: bool
    townships: frozenset[str]
    villages: frozenset[tuple[str, str]]
    roles: tuple[Role, ...]

    def covers(self, incident: Incident) -> bool:
        if incident.county != self.county:
            return False
        if self.whole_county or incident.township in self.townships:
            return True
        # A township parent (village "") spans villages: only its township and county see it.
        return (incident.township, incident.village) in self.villages


def jurisdiction(registry: Registry, officer_id: str) -> Jurisdiction:
    """Every cell counts whose role the officer holds, on duty now or not: an officer off
    shift still follows up their cases."""
    cells = [c for c in registry.cells.values() if officer_id in c.holders]
    return Jurisdiction(
        officer_id=officer_id,
        county=registry.county,
        whole_county=any(len(c.key) == 0 for c in cells),
        townships=frozenset(c.key[0] for c in cells if len(c.key) == 1),
        villages=frozenset((c.key[0], c.key[1]) for c in cells if len(c.key) == 2),
        roles=tuple(Role(c.level, c.path, c.name) for c in sorted(cells, key=lambda c: c.key)),
    )
