"""Credentials: API tokens (stored hashed), user passwords (argon2), and the actor they yield."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from tocsin.core.actors import ROLE_SCOPES, Actor, Scope, expand_scopes
from tocsin.core.errors import InvalidInput, NotFound
from tocsin.storage.tables import ApiTokenRow, UserRow

TOKEN_PREFIX = "tcs_"  # noqa: S105 - a recognisable prefix, not a secret
_hasher = PasswordHasher()


def hash_token(token: str) -> str:
    """Tokens are 256-bit random values, so one SHA-256 is enough to store them safely.

    A slow hash (argon2) is for guessable secrets; it would cost every API call milliseconds.
    """
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedToken:
    id: int
    name: str
    token: str
    scopes: list[str]
    user_id: str | None


def parse_scopes(values: Iterable[str]) -> frozenset[Scope]:
    out = set()
    for value in values:
        try:
            out.add(Scope(value.strip().lower()))
        except ValueError as exc:
            raise InvalidInput(
                f"unknown scope {value!r}; valid: read, respond, admin",
                field="scopes",
                valid=[s.value for s in Scope],
            ) from exc
    if not out:
        raise InvalidInput(
            "a token needs at least one scope", field="scopes", valid=[s.value for s in Scope]
        )
    return expand_scopes(out)


def create_token(
    session: Session, now: datetime, *, name: str, scopes: Iterable[str], user_id: str | None = None
) -> IssuedToken:
    """Issue a token; the plain value is returned once and never stored."""
    granted = parse_scopes(scopes)
    if user_id is not None:
        user = session.get(UserRow, user_id)
        if user is None or user.archived:
            raise InvalidInput(f"unknown user {user_id!r}", field="user")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiTokenRow(
        name=name,
        token_hash=hash_token(token),
        prefix=token[:10],
        scopes=sorted(s.value for s in granted),
        user_id=user_id,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return IssuedToken(row.id, name, token, list(row.scopes), user_id)


def revoke_token(session: Session, now: datetime, token_id: int) -> None:
    row = session.get(ApiTokenRow, token_id)
    if row is None:
        raise NotFound(f"token {token_id} not found")
    row.revoked_at = row.revoked_at or now


def actor_for_token(
    session: Session, token: str, *, admin_token: str | None, source: str = "api"
) -> Actor | None:
    """Return the actor a bearer token stands for, or None when it is not valid."""
    if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
        return Actor(
            id="admin-token", scopes=frozenset(Scope), source=source, display="Admin token"
        )
    row = session.scalar(select(ApiTokenRow).where(ApiTokenRow.token_hash == hash_token(token)))
    if row is None or row.revoked_at is not None:
        return None
    scopes = expand_scopes(frozenset(Scope(s) for s in row.scopes))
    if row.user_id:
        user = session.get(UserRow, row.user_id)
        if user is None or user.archived:
            return None
        # A token never grants more than its user's role allows.
        scopes = scopes & ROLE_SCOPES.get(user.role, frozenset())
        return Actor(id=user.id, scopes=scopes, user_id=user.id, source=source, display=user.name)
    return Actor(id=f"token:{row.name}", scopes=scopes, source=source, display=row.name)


def actor_for_user(user: UserRow, source: str = "web") -> Actor:
    return Actor(
        id=user.id,
        scopes=ROLE_SCOPES.get(user.role, frozenset()),
        user_id=user.id,
        source=source,
        display=user.name,
    )


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def set_password(session: Session, user_id: str, password: str) -> None:
    """Set a user's web password (argon2id)."""
    if len(password) < 8:
        raise InvalidInput("a password needs at least 8 characters", field="password")
    user = session.get(UserRow, user_id)
    if user is None or user.archived:
        raise NotFound(f"user {user_id!r} not found")
    user.password_hash = hash_password(password)


def authenticate(session: Session, user_id: str, password: str) -> UserRow | None:
    """Return the user when the password matches; None otherwise (same time either way)."""
    user = session.get(UserRow, user_id)
    if user is None or user.archived or not user.password_hash:
        # Spend the same time as a real check so timing does not reveal which users exist.
        _dummy_verify(password)
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


_DUMMY_HASH = _hasher.hash("tocsin-dummy-password")


def _dummy_verify(password: str) -> None:
    with contextlib.suppress(VerificationError, InvalidHashError):
        _hasher.verify(_DUMMY_HASH, password)
