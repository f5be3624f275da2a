"""Per-source authentication: any one configured rule that matches lets a request in.

Secrets are compared in constant time; a failure says which scheme was expected, never why.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable, Mapping

from espwire.config import AuthRule, BasicAuth, BearerAuth, HeaderAuth, SourceConfig


def _basic_credentials(authorization: str) -> tuple[str, str] | None:
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _bearer_token(authorization: str) -> str | None:
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


Check = Callable[[Mapping[str, str]], bool]


def _header_check(name: str, secret: bytes) -> Check:
    def check(headers: Mapping[str, str]) -> bool:
        given = headers.get(name)
        return given is not None and hmac.compare_digest(given.encode("utf-8", "surrogateescape"), secret)

    return check


def _basic_check(username: bytes, password: bytes) -> Check:
    def check(headers: Mapping[str, str]) -> bool:
        creds = _basic_credentials(headers.get("Authorization", ""))
        if creds is None:
            return False
        # Both comparisons always run: no early exit that times the username.
        user_ok = hmac.compare_digest(creds[0].encode("utf-8", "surrogateescape"), username)
        password_ok = hmac.compare_digest(creds[1].encode("utf-8", "surrogateescape"), password)
        return user_ok and password_ok

    return check


def _bearer_check(token: bytes) -> Check:
    def check(headers: Mapping[str, str]) -> bool:
        given = _bearer_token(headers.get("Authorization", ""))
        return given is not None and hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token)

    return check


def _compile(rule: AuthRule) -> Check:
    if isinstance(rule, HeaderAuth):
        return _header_check(rule.name, rule.value.get_secret_value().encode())
    if isinstance(rule, BasicAuth):
        return _basic_check(rule.username.encode(), rule.password.get_secret_value().encode())
    if isinstance(rule, BearerAuth):
        return _bearer_check(rule.token.get_secret_value().encode())
    return lambda headers: True  # NoAuth, warned about at start


class Authenticator:
    """One source's rules, compiled once (secrets encoded, header names fixed): every request pays
    only for the lookups and the constant-time comparisons."""

    def __init__(self, source: SourceConfig) -> None:
        self._checks = tuple(_compile(rule) for rule in source.auth)

    def __call__(self, headers: Mapping[str, str]) -> bool:
        # Stopping at the first match tells a timing observer only which rule a *valid* credential
        # matched; a request that fails always runs every rule, so a failure's timing reveals nothing.
        for check in self._checks:  # noqa: SIM110 - any() over a generator costs more per request
            if check(headers):
                return True
        return False


def challenge(source: SourceConfig) -> str | None:
    """The WWW-Authenticate value for a 401: a challenge per standard scheme the source accepts (RFC 7617
    Basic, RFC 6750 Bearer). A secret in a header of the source's own has no scheme to name: then None."""
    realm = f'realm="espwire {source.id}"'
    challenges = []
    if any(isinstance(rule, BasicAuth) for rule in source.auth):
        challenges.append(f'Basic {realm}, charset="UTF-8"')
    if any(isinstance(rule, BearerAuth) for rule in source.auth):
        challenges.append(f"Bearer {realm}")
    return ", ".join(challenges) or None


def credential_header_names(source: SourceConfig) -> frozenset[str]:
    """Headers that carry this source's secrets: never stored in the envelope."""
    names = {"authorization", "proxy-authorization", "cookie", "x-api-key"}
    names.update(rule.name.lower() for rule in source.auth if isinstance(rule, HeaderAuth))
    return frozenset(names)
