"""Per-sink privacy: keep, hash (keyed HMAC-SHA256) or drop personal fields before a sink writes them.

Applied by the runner to every event before ``write_batch``, so no sink can forget it. What it covers:
``subject``, ``data.recipient.email`` / ``.phone``, ``data.client.ip`` / ``.user_agent``. ``data.raw``
is the provider's payload and holds the same values in provider-specific places, so as soon as one
field is not "keep" the whole ``data.raw`` is dropped (set to null): rewriting inside every provider's
shape would miss some. Not covered: free-form places such as ``data.metadata`` and ``data.tags``, and
derived fields (``data.geo`` from the IP) — a sink that must not see those should not receive them.

Hashes are keyed (the key is a secret of the sink's config), so they cannot be reversed by hashing a
list of known addresses, and they are stable: the same address always gives the same value, so joins
across events and sinks still work. Emails are trimmed and lower-cased first (and a display form
``Name <addr>`` reduced to the address), phones keep only digits and a leading "+", so trivially
different spellings hash alike.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

FieldPolicy = Literal["keep", "hash", "drop"]
_PHONE_NOISE = re.compile(r"[^0-9+]")
_BRACKETED = re.compile(r"<([^<>]*)>$")


class PrivacyConfig(BaseModel):
    """``privacy = { email = "hash", phone = "drop", ip = "keep", user_agent = "keep", hash_key = "..." }``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: FieldPolicy = "keep"
    phone: FieldPolicy = "keep"
    ip: FieldPolicy = "keep"
    user_agent: FieldPolicy = "keep"
    hash_key: SecretStr | None = None

    @model_validator(mode="after")
    def _key_when_hashing(self) -> Self:
        if "hash" in self.policies() and not (self.hash_key and self.hash_key.get_secret_value()):
            raise ValueError("a field is hashed: privacy.hash_key must be set")
        return self

    def policies(self) -> tuple[FieldPolicy, ...]:
        return (self.email, self.phone, self.ip, self.user_agent)

    @property
    def keeps_everything(self) -> bool:
        return all(p == "keep" for p in self.policies())


def normalise_email(email: str) -> str:
    """The address alone, trimmed and lower-cased: ``"Jane Doe" <Jane@Example.com>`` is ``jane@example.com``
    (providers pass a recipient's display form through); a subaddress (``a+news@x.com``) stays as it is."""
    text = email.strip()
    if text.endswith(">"):
        bracketed = _BRACKETED.search(text)
        if bracketed is not None and "@" in bracketed.group(1):
            text = bracketed.group(1).strip()
    return text.lower()


def normalise_phone(phone: str) -> str:
    return _PHONE_NOISE.sub("", phone)


class Redactor:
    """Applies one PrivacyConfig; returns new dicts and never changes the events it is given."""

    def __init__(self, config: PrivacyConfig) -> None:
        self.config = config
        self._key = config.hash_key.get_secret_value().encode() if config.hash_key else b""

    def digest(self, value: str) -> str:
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()

    def email(self, email: str) -> str:
        """What this sink stores for ``email`` (also used to look a hashed address up)."""
        if self.config.email == "hash":
            return self.digest(normalise_email(email))
        return normalise_email(email)

    def apply(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The events as this sink may see them: ``events`` itself (the same list) when nothing is to change."""
        if self.config.keeps_everything:
            return events
        return [self.apply_one(event) for event in events]

    def apply_one(self, event: dict[str, Any]) -> dict[str, Any]:
        conf = self.config
        out = dict(event)
        data = dict(event.get("data") or {})
        out["data"] = data
        recipient = data.get("recipient")
        email = phone = None
        if isinstance(recipient, dict):
            recipient = dict(recipient)
            email, phone = recipient.get("email"), recipient.get("phone")
            self._rewrite(recipient, "email", conf.email, normalise_email)
            self._rewrite(recipient, "phone", conf.phone, normalise_phone)
            data["recipient"] = recipient
        client = data.get("client")
        if isinstance(client, dict):
            client = dict(client)
            self._rewrite(client, "ip", conf.ip, str.strip)
            self._rewrite(client, "user_agent", conf.user_agent, str.strip)
            data["client"] = client
        subject = out.get("subject")
        if isinstance(subject, str):
            # The subject is the recipient as a string: it follows the policy of whatever it is.
            if (email and subject.lower() == email.lower()) or "@" in subject:
                self._rewrite(out, "subject", conf.email, normalise_email)
            elif phone and subject == phone:
                self._rewrite(out, "subject", conf.phone, normalise_phone)
        if "raw" in data:
            data["raw"] = None
        return out

    def _rewrite(self, holder: dict[str, Any], key: str, policy: FieldPolicy, normalise: Any) -> None:
        value = holder.get(key)
        if policy == "keep" or value is None:
            return
        if policy == "drop":
            del holder[key]
        elif isinstance(value, str):
            holder[key] = self.digest(normalise(value))
        else:
            del holder[key]
