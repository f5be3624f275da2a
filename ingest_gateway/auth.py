"""Per-source authentication: any one configured rule that matches lets a request in.

Secrets are compared in constant time; a failure says which scheme was expected, never why.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping

from espwire.config import AuthRule, BasicAuth, BearerAuth, HeaderAuth, NoAuth, SourceConfig


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())


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


def rule_matches(rule: AuthRule, headers: Mapping[str, str]) -> bool:
    if isinstance(rule, NoAuth):
        return True
    if isinstance(rule, HeaderAuth):
        given = headers.get(rule.name)
        return given is not None and _same(given, rule.value.get_secret_value())
    authorization = headers.get("Authorization", "")
    if isinstance(rule, BasicAuth):
        creds = _basic_credentials(authorization)
        if creds is None:
            return False
        # Both comparisons always run: no early exit that times the username.
        user_ok = _same(creds[0], rule.username)
        password_ok = _same(creds[1], rule.password.get_secret_value())
        return user_ok and password_ok
    if isinstance(rule, BearerAuth):
        token = _bearer_token(authorization)
        return token is not None and _same(token, rule.token.get_secret_value())
    return False


def authenticate(source: SourceConfig, headers: Mapping[str, str]) -> bool:
    # Evaluate every rule, so the time taken does not reveal which rule came close.
    results = [rule_matches(rule, headers) for rule in source.auth]
    return any(results)


def challenge(source: SourceConfig) -> str | None:
    """The WWW-Authenticate value for a 401, when the source accepts Basic."""
    if any(isinstance(rule, BasicAuth) for rule in source.auth):
        return f'Basic realm="espwire {source.id}", charset="UTF-8"'
    return None


def credential_header_names(source: SourceConfig) -> frozenset[str]:
    """Headers that carry this source's secrets: never stored in the envelope."""
    names = {"authorization", "proxy-authorization", "cookie", "x-api-key"}
    names.update(rule.name.lower() for rule in source.auth if isinstance(rule, HeaderAuth))
    return frozenset(names)
