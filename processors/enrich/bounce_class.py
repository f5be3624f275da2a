"""Bounce category and severity from the diagnosis: ``data.bounce.category`` (one vocabulary for all
providers) and ``data.bounce.inferred_severity`` where the provider did not classify the bounce.

Sources, first that speaks wins: the provider's own class (SparkPost bounce_class, Falconide
BOUNCE_REASONID), unambiguous wording of the server's reply, the enhanced status code (RFC 3463
subject.detail, RFC 7372 for authentication), vaguer wording, the basic reply code, and Pure360's
trigger name. Severity: 4.x.x / 4xx is transient (soft); 5.x.x / 5xx is hard, block or soft by category.
Guarantees: ``bounce.severity`` stays exactly what the provider said, ``undetermined`` included
(consumers and the fixtures' contract rely on it); our own reading of the reply goes beside it in
``inferred_severity``, so a consumer wanting a best guess reads ``inferred_severity or severity``;
missing ``smtp_status`` / ``enhanced_status`` are parsed out of ``reason``; the original text is
never changed.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from processors.enrich.base import Event, per_event_failure

CATEGORIES = (
    "mailbox_unknown",
    "mailbox_disabled",
    "mailbox_full",
    "dns_failure",
    "routing_failure",
    "connection_failure",
    "timeout",
    "message_too_large",
    "relay_denied",
    "policy_block",
    "spam_block",
    "spam_content",
    "content_rejected",
    "auth_failure",
    "rate_limited",
    "transient_failure",
    "protocol_error",
    "auto_reply",
    "challenge_response",
    "unsubscribe",
    "subscribe",
    "admin",
    "undetermined",
)

# Severity of a permanent (5xx) failure by category; transient (4xx) failures are always soft.
_PERMANENT_SEVERITY: dict[str, str] = {
    "mailbox_unknown": "hard",
    "mailbox_disabled": "hard",
    "dns_failure": "hard",
    "routing_failure": "hard",
    "protocol_error": "hard",
    "unsubscribe": "hard",
    "mailbox_full": "soft",
    "message_too_large": "soft",
    "rate_limited": "soft",
    "timeout": "soft",
    "connection_failure": "soft",
    "transient_failure": "soft",
    "auto_reply": "soft",
    "challenge_response": "soft",
    "relay_denied": "block",
    "policy_block": "block",
    "spam_block": "block",
    "spam_content": "block",
    "content_rejected": "block",
    "auth_failure": "block",
    "admin": "admin",
    "subscribe": "admin",
}

# SparkPost's bounce classes (support.sparkpost.com "Bounce classification codes"). 1, 30 and 40 are
# generic, so the reply text decides those.
_SPARKPOST: dict[str, str] = {
    "10": "mailbox_unknown",
    "20": "transient_failure",
    "21": "dns_failure",
    "22": "mailbox_full",
    "23": "message_too_large",
    "24": "timeout",
    "25": "admin",
    "26": "admin",  # Smart Send suppression: SparkPost itself held the message back
    "50": "policy_block",
    "51": "spam_block",
    "52": "spam_content",
    "53": "content_rejected",
    "54": "relay_denied",
    "60": "auto_reply",
    "70": "transient_failure",
    "80": "subscribe",
    "90": "unsubscribe",
    "100": "challenge_response",
}
_NARROWER_BLOCKS = frozenset({"spam_block", "spam_content", "auth_failure", "content_rejected", "relay_denied"})
# Falconide publishes no table of BOUNCE_REASONID; these are the ids its documentation shows with their
# replies. Unknown ids fall through to the reply text.
_FALCONIDE: dict[str, str] = {"342": "mailbox_unknown"}
# Pure360's trigger names (provider_event_type), used only when nothing else speaks.
_PURE360: dict[str, str] = {"BLOCKED": "policy_block", "SOFTBOUNCE": "transient_failure"}


def _patterns(*pairs: tuple[str, str]) -> tuple[tuple[re.Pattern[str], str], ...]:
    return tuple((re.compile(text, re.IGNORECASE), category) for text, category in pairs)


# Wording that names its cause whatever code came with it; order matters (first match wins).
_STRONG = _patterns(
    (r"resolver\.rst|not authorized to send to|restricted to|sendernotauthenticatedforgroup", "policy_block"),
    (
        r"recipientnotfound|recipient not found|recipient address rejected: (?:user unknown|access denied)",
        "mailbox_unknown",
    ),
    (r"dmarc|\bspf\b|\bdkim\b|unauthenticated|not authenticated|authentication (?:fail|requir|check)", "auth_failure"),
    (
        r"rate limit|too many (?:messages|connections|recipients|concurrent)|throttl|unusual rate|unexpected volume|"
        r"exceeded the rate|sending rate|receiving mail (?:too quickly|at a rate)|sending (?:quota|limit)|"
        r"daily (?:user )?(?:sending )?(?:quota|limit)|\b4\d\d rp-00\d\b|too much mail",
        "rate_limited",
    ),
    (
        r"spamhaus|spamcop|sorbs|barracudacentral|block ?list|black ?list|\brbl\b|dnsbl|reputation|"
        r"listed (?:at|on|in|by)|banned sending ip|traffic not accepted|"
        r"\[tss?\d\d\]|permanently deferred|retrying will not succeed|ipcheck\.proofpoint|csi\.cloudmark",
        "spam_block",
    ),
    (
        r"virus|malware|phish|security issue|prohibited attachment|attachment.*(?:not allowed|blocked)",
        "content_rejected",
    ),
    # The sender's address refused (Postfix, Exim): says nothing of the recipient's, even with "domain not found".
    (r"sender address rejected|sender verify failed|sender verification failed", "policy_block"),
    # Gmail's wording for a mailbox over quota and abandoned for good (OverQuotaPerm), before "over quota".
    (r"overquotaperm|(?:over quota|out of storage space) and inactive", "mailbox_disabled"),
    (
        r"over ?quota|quota ?(?:usage )?exceeded|mailbox (?:is )?full|mailbox size limit|exceeded storage|"
        r"insufficient storage|out of storage|storage allocation|full mailbox",
        "mailbox_full",
    ),
    (
        r"too (?:large|big)|size limit|exceeds? (?:the )?(?:maximum |fixed )?(?:message )?size|message size",
        "message_too_large",
    ),
    (
        r"relay(?:ing)? (?:access )?(?:denied|not permitted|not allowed|prohibited)|unable to relay|"
        r"not permitted to relay|we do not relay",
        "relay_denied",
    ),
    (r"greylist|graylist|temporary lookup failure|try again later", "transient_failure"),
    (
        r"host not found|domain not found|no such domain|nonexistentdomain|non-existent domain|name service error|"
        r"unrouteable domain|no mx|mx lookup|recipient domain|null mx|dns error|domain does not accept mail|"
        r"dns (?:query|lookup|resolution) fail|dns failure",
        "dns_failure",
    ),
    (r"timed? ?out|expired|delivery time|failing for a long time", "timeout"),
    (
        r"connection (?:refused|reset|dropped|closed|lost)|connect to .* failed|network is unreachable",
        "connection_failure",
    ),
    (r"ptr record|reverse (?:dns|hostname)|rdns|\b5\d\d (?:sc|dy|ou)-00\d\b", "policy_block"),
    (
        r"is disabled|account (?:has been )?(?:disabled|deactivated|suspended|closed|locked)|"
        r"mailbox (?:is )?(?:disabled|inactive)|inactive (?:account|user|mailbox)|no longer (?:active|in use)",
        "mailbox_disabled",
    ),
    (r"auto(?:matic)?[- ]?repl|out of (?:the )?office|vacation", "auto_reply"),
    (r"challenge|verify your (?:email|address) to", "challenge_response"),
)

# Enhanced status (subject.detail) that says enough alone.
_ENHANCED: dict[str, str] = {
    "1.1": "mailbox_unknown",
    "1.2": "dns_failure",
    "1.3": "mailbox_unknown",
    "1.4": "mailbox_unknown",
    "1.5": "mailbox_unknown",
    "1.6": "mailbox_unknown",
    "1.7": "policy_block",
    "1.8": "policy_block",
    "1.10": "dns_failure",
    "2.1": "mailbox_disabled",
    "2.2": "mailbox_full",
    "2.3": "message_too_large",
    "3.1": "transient_failure",
    "3.2": "transient_failure",
    "3.3": "protocol_error",
    "3.4": "message_too_large",
    "3.5": "transient_failure",
    "4.0": "routing_failure",
    "4.1": "connection_failure",
    "4.2": "connection_failure",
    "4.3": "dns_failure",
    "4.4": "dns_failure",
    "4.5": "rate_limited",
    "4.6": "routing_failure",
    "4.7": "timeout",
    "4.14": "routing_failure",
    "6.0": "content_rejected",
    "6.1": "content_rejected",
    "6.2": "content_rejected",
    "6.3": "content_rejected",
    "6.4": "content_rejected",
    "6.5": "content_rejected",
    "7.8": "auth_failure",
    "7.20": "auth_failure",
    "7.21": "auth_failure",
    "7.22": "auth_failure",
    "7.23": "auth_failure",
    "7.24": "auth_failure",
    "7.25": "policy_block",
    "7.26": "auth_failure",
    "7.27": "policy_block",
}

# Vaguer wording, tried after the specific enhanced codes.
_WEAK = _patterns(
    (
        r"user unknown|unknown user|no such (?:user|mailbox|recipient|address|person)|does ?n[o']t exist|not exist|"
        r"invalid (?:recipient|mailbox|address)|mailbox (?:is )?(?:not found|unavailable)|address rejected|"
        r"unrouteable address|"
        r"user not found|undeliverable address|bad destination mailbox|not a valid|doesn't have an? .* account|"
        r"no mailbox|unknown recipient|recipient rejected|not our customer",
        "mailbox_unknown",
    ),
    (r"spam|junk|unsolicited|bulk mail", "spam_content"),
    (r"content|message rejected", "content_rejected"),
    (r"temporar|deferred|later", "transient_failure"),
    (
        r"policy|denied|blocked|not allowed|prohibit|refused|rejected|not accepted|deny ?list|service unavailable",
        "policy_block",
    ),
)

# Whole enhanced classes, when nothing narrower applied.
_ENHANCED_SUBJECT: dict[str, str] = {
    "1": "mailbox_unknown",
    "2": "mailbox_disabled",
    "3": "transient_failure",
    "4": "routing_failure",
    "5": "protocol_error",
    "6": "content_rejected",
    "7": "policy_block",
}

_BASIC: dict[str, str] = {
    "421": "transient_failure",
    "450": "transient_failure",
    "451": "transient_failure",
    "452": "mailbox_full",
    "500": "protocol_error",
    "501": "protocol_error",
    "502": "protocol_error",
    "503": "protocol_error",
    "504": "protocol_error",
    "521": "dns_failure",
    "550": "mailbox_unknown",
    "551": "mailbox_unknown",
    "552": "mailbox_full",
    "553": "mailbox_unknown",
    "554": "policy_block",
    "556": "dns_failure",
}

# A reply code starts the text, a line, or a quoted reply (Exchange's "Remote Server returned '550 ...'").
_SMTP_STATUS = re.compile(r"(?:^|said:\s*|smtp;\s*|[\s'\"])([245]\d\d)(?=[\s\-#]|$)")
# Not part of a longer dotted number (Yahoo's "4.16.55.1"); a sentence's full stop may follow.
_ENHANCED_STATUS = re.compile(r"(?<![\d.])#?([245])\.(\d{1,3})\.(\d{1,3})(?!\d|\.\d)")


def parse_codes(text: str) -> tuple[str | None, str | None]:
    """(basic reply code, enhanced status code) found in a server reply, e.g. ``550-5.1.1 ...``."""
    basic = _SMTP_STATUS.search(text)
    enhanced = _ENHANCED_STATUS.search(text)
    return (
        basic.group(1) if basic else None,
        ".".join(enhanced.groups()) if enhanced else None,
    )


def _first(patterns: tuple[tuple[re.Pattern[str], str], ...], text: str) -> str | None:
    for pattern, category in patterns:
        if pattern.search(text):
            return category
    return None


@lru_cache(maxsize=20_000)
def classify(reason: str, smtp_status: str | None, enhanced_status: str | None) -> tuple[str, str | None]:
    """(category, permanence) from the reply alone; permanence is "5", "4" or None (no code)."""
    if enhanced_status and enhanced_status.count(".") == 2:
        klass, subject, detail = enhanced_status.split(".")
    else:
        klass = subject = detail = ""
    permanence = klass or (smtp_status[0] if smtp_status else None)
    category = _first(_STRONG, reason) if reason else None
    if category is None and subject:
        category = _ENHANCED.get(f"{subject}.{detail}")
    if category is None and reason:
        category = _first(_WEAK, reason)
    if category is None and subject and subject != "0":
        category = _ENHANCED_SUBJECT.get(subject)
    if category is None and smtp_status:
        category = _BASIC.get(smtp_status)
    return category or "undetermined", permanence if permanence in ("4", "5") else None


def severity_for(category: str, permanence: str | None) -> str:
    if permanence == "4":
        return "soft"
    if category == "undetermined":
        return "hard" if permanence == "5" else "undetermined"
    return _PERMANENT_SEVERITY.get(category, "hard" if permanence == "5" else "undetermined")


def _provider_category(data: dict[str, Any], bounce: dict[str, Any]) -> str | None:
    code = bounce.get("class_code")
    if not isinstance(code, str) or not code:
        return None
    provider = data.get("provider")
    if provider == "sparkpost":
        return _SPARKPOST.get(code.strip().lstrip("0"))
    if provider == "falconide":
        return _FALCONIDE.get(code.strip())
    return None


class BounceClassEnricher:
    name = "bounce_class"

    async def enrich_batch(self, events: list[Event]) -> None:
        for event in events:
            data = event["data"]
            bounce = data.get("bounce")
            if not bounce:
                continue
            try:
                self._classify(data, bounce)
            except Exception as exc:
                per_event_failure(self.name, event, exc)

    def _classify(self, data: dict[str, Any], bounce: dict[str, Any]) -> None:
        reason = bounce.get("reason")
        reason = reason if isinstance(reason, str) else ""
        smtp_status = bounce.get("smtp_status")
        enhanced_status = bounce.get("enhanced_status")
        if reason and (not smtp_status or not enhanced_status):
            parsed_basic, parsed_enhanced = parse_codes(reason)
            if not smtp_status and parsed_basic:
                smtp_status = bounce["smtp_status"] = parsed_basic
            if not enhanced_status and parsed_enhanced:
                enhanced_status = bounce["enhanced_status"] = parsed_enhanced
        category, permanence = classify(reason, smtp_status, enhanced_status)
        hinted = _provider_category(data, bounce)
        if hinted == "policy_block" and category in _NARROWER_BLOCKS:
            pass  # SparkPost's "mail block" (50) is generic; the reply names which block it was
        elif hinted is not None:
            category = hinted
        elif category == "undetermined" and data.get("provider") == "pure360":
            category = _PURE360.get(str(data.get("provider_event_type", "")).upper(), category)
        # One vocabulary (CATEGORIES) for every provider: an adapter's own name (SparkPost's "no_rcpt" for
        # class 30) gives way even to "undetermined"; class_code keeps what the provider said.
        if category != "undetermined" or bounce.get("category") not in CATEGORIES:
            bounce["category"] = category
        if bounce.get("severity") in (None, "undetermined"):
            bounce["inferred_severity"] = severity_for(category, permanence)
