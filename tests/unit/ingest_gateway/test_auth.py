import base64

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from espwire.config import SourceConfig
from ingest_gateway.auth import Authenticator, challenge, credential_header_names


def _source(*rules: dict[str, str]) -> SourceConfig:
    return SourceConfig.model_validate({"id": "s", "provider": "sparkpost", "auth": list(rules)})


def _headers(**given: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict({k.replace("_", "-"): v for k, v in given.items()}))


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


HEADER = {"type": "header", "name": "X-Token", "value": "s3cret"}
BASIC = {"type": "basic", "username": "u", "password": "p@ss"}
BEARER = {"type": "bearer", "token": "tok"}


@pytest.mark.parametrize(
    ("rules", "headers", "allowed"),
    [
        ((HEADER,), {"X_Token": "s3cret"}, True),
        ((HEADER,), {"x_token": "s3cret"}, True),  # header names are case-insensitive
        ((HEADER,), {"X_Token": "s3cret "}, False),
        ((HEADER,), {"X_Token": "sécret"}, False),  # non-ASCII never raises
        ((HEADER,), {}, False),
        ((BASIC,), {"Authorization": _basic("u", "p@ss")}, True),
        ((BASIC,), {"Authorization": _basic("u", "wrong")}, False),
        ((BASIC,), {"Authorization": _basic("x", "p@ss")}, False),
        ((BASIC,), {"Authorization": "Basic not-base64!"}, False),
        ((BASIC,), {"Authorization": "Bearer tok"}, False),
        ((BEARER,), {"Authorization": "Bearer tok"}, True),
        ((BEARER,), {"Authorization": "bearer tok"}, True),
        ((BEARER,), {"Authorization": "Bearer other"}, False),
        (({"type": "none"},), {}, True),
        # Rotation: any one of several rules lets the request in.
        ((HEADER, {**HEADER, "value": "next"}), {"X_Token": "next"}, True),
        ((HEADER, BASIC, BEARER), {"Authorization": "Bearer tok"}, True),
        ((HEADER, BASIC, BEARER), {"Authorization": "Bearer nope", "X_Token": "nope"}, False),
    ],
)
def test_rules(rules: tuple[dict[str, str], ...], headers: dict[str, str], allowed: bool) -> None:
    assert Authenticator(_source(*rules))(_headers(**headers)) is allowed


def test_challenge_names_each_standard_scheme_the_source_accepts() -> None:
    assert challenge(_source(BASIC)) == 'Basic realm="espwire s", charset="UTF-8"'
    assert challenge(_source(HEADER, BEARER)) == 'Bearer realm="espwire s"'
    assert challenge(_source(BEARER, BASIC)) == 'Basic realm="espwire s", charset="UTF-8", Bearer realm="espwire s"'
    assert challenge(_source(HEADER)) is None  # a header of the source's own names no scheme


def test_credential_headers_are_never_kept() -> None:
    names = credential_header_names(_source(HEADER))
    assert {"x-token", "authorization", "cookie"} <= names


def test_a_source_without_credentials_is_warned_about_at_start(caplog: pytest.LogCaptureFixture) -> None:
    from espwire.config import Settings
    from ingest_gateway.routes import HookHandler

    sources = [_source(HEADER), SourceConfig.model_validate({"id": "open", "provider": "falconide"})]
    fenced = {"id": "fenced", "provider": "falconide", "auth": [{"type": "none"}], "allow_ips": ["192.0.2.0/24"]}
    sources.append(SourceConfig.model_validate(fenced))
    with caplog.at_level("WARNING", logger="espwire.gateway"):
        HookHandler(Settings(sources=sources), publisher=None)  # type: ignore[arg-type]
    warnings = [r for r in caplog.records if r.getMessage() == "source accepts requests without credentials"]
    assert {getattr(r, "source"): getattr(r, "from") for r in warnings} == {  # noqa: B009
        "open": "from anywhere",
        "fenced": "from its allow_ips",
    }
