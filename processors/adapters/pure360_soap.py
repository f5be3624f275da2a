"""Pure360's SOAP client-pull batch (a ``bus_facade_eventNotification`` getBatch response) to canonical
events, through the same per-notification mapping as the HTTP adapter (``pure360.map_notifications``);
never raises, a row that cannot be mapped is a failure with its row index.

The response is a SOAP envelope whose ``Result`` is an apache xml-soap Map: ``result``, then
``resultData`` / ``bus_entity_eventNotificationBatch`` with ``eventCount``, ``eventMeta`` (type -> the
column names of that type's rows) and ``eventData`` (base64 CSV without a header row).

Decisions (the format is documented by one example):
- XML is parsed with defusedxml and a DTD is refused (a SOAP message must not carry one), so entity
  expansion and external references cannot happen. Elements are matched by local name, so any
  namespace prefix or URI works. A SOAP Fault is a ``soap_fault`` failure, a ``result`` other than
  ``success`` a ``provider_error`` failure, any other shape an ``invalid_soap`` failure.
- ``eventData`` may be wrapped over lines (whitespace is ignored) and may lack its ``=`` padding;
  anything else that is not base64 is an ``invalid_event_data`` failure for the whole batch. No or an
  empty ``eventData`` is no rows: an empty batch (``eventCount`` 0) is no events and no failures.
- Rows are read with the csv module (quoting, doubled quotes, CRLF; spaces after a comma are skipped, as
  in the documented OPEN meta ``type, email, ...``); blank rows are skipped, a row with broken quoting
  (``"a"b``, an unclosed quote) is an ``invalid_row`` failure. Each field is decoded as
  UTF-8 on its own, so a row with bad bytes fails alone (``invalid_utf8``). ``Failure.index`` is the
  0-based CSV record number in ``eventData`` (blank rows counted).
- Row order is kept, although Pure360 sends rows newest-first: order within a batch is the provider's.
- A row's first column is its type, named ``type`` whatever eventMeta calls it (``Event Type``, or
  nothing); ``eventMeta[type]`` (type matched ignoring case and surrounding spaces) names its columns in
  order, names trimmed. A row whose type has no meta is a
  ``missing_event_meta`` failure. Values beyond the named columns are kept as ``column <n>`` (1-based);
  missing trailing values are absent. The same name twice: the last value wins (as in the FTP log).
- The notification is the named columns, values unchanged (``data.raw``). Its event time is the row's own
  ``<type> Date`` column (``Click Date`` for CLICK; names matched like the shared mapping, ignoring case,
  spaces and ``_``). The shared mapping reads the time from ``Event_date`` only (DELIVERYSTART and
  DELIVERY from their delivery dates first), so when the row has no event-date column that value is
  also given as ``Event_date``: ``data.raw`` then holds every column as named plus that one key.
  ``deliveryDate`` of an OPEN row is the campaign's, not the open's: OPEN rows carry no event time.
- ``eventCount`` that differs from the number of non-blank rows is an ``event_count_mismatch`` failure
  (events may be missing from the batch) while the rows that are there still come out.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import re
from typing import Any
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeElementTree
from defusedxml import DefusedXmlException

from espwire.envelope import Envelope
from processors.adapters.base import AdaptResult, Failure
from processors.adapters.json_body import BodyError
from processors.adapters.pure360 import field_key, map_notifications

BATCH_KEY = "bus_entity_eventNotificationBatch"
EVENT_DATE_FIELD = "Event_date"  # the HTTP spelling, which the shared mapping reads as the event time
_WHITESPACE = re.compile(rb"\s+")
# Date columns of the message rather than of the row's event (an OPEN row's deliveryDate is not when it opened).
_NOT_THE_EVENTS = ("delivery", "schedule", "send", "sent", "created")
_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"


def _local(element: Element) -> str:
    tag = element.tag
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _child(element: Element, name: str) -> Element | None:
    for child in element:
        if _local(child) == name:
            return child
    return None


def _text(element: Element | None) -> str | None:
    """A leaf value's text (None for a missing or ``xsi:nil`` value); comments inside it are skipped."""
    if element is None or element.get(_XSI_NIL) in ("true", "1"):
        return None
    return "".join(element.itertext())


def _map(element: Element | None, what: str) -> dict[str, Element]:
    """An apache xml-soap Map's ``<item><key/><value/></item>`` entries: key text -> value element."""
    if element is None:
        raise BodyError("invalid_soap", f"no {what}")
    entries: dict[str, Element] = {}
    for item in element:
        if _local(item) != "item":
            continue
        key, value = _child(item, "key"), _child(item, "value")
        if key is None or value is None:
            raise BodyError("invalid_soap", f"{what} has an item without key or value")
        entries[(_text(key) or "").strip()] = value
    return entries


def _fault_detail(fault: Element) -> str:
    code = _text(_child(fault, "faultcode")) or _text(_child(fault, "Code"))
    reason = _text(_child(fault, "faultstring")) or _text(_child(fault, "Reason"))
    if code is None and reason is None:
        return " ".join("".join(fault.itertext()).split())[:300]
    return f"{' '.join((code or '').split())}: {' '.join((reason or '').split())}"[:300]


def parse_batch(body: bytes) -> tuple[int | None, dict[str, list[str]], bytes]:
    """A getBatch response's ``eventCount``, ``eventMeta`` (normalised type -> column names) and decoded
    ``eventData``; raises BodyError when the body is not a successful getBatch response."""
    try:
        root = SafeElementTree.fromstring(body, forbid_dtd=True)
    except SafeElementTree.ParseError as exc:
        raise BodyError("invalid_xml", str(exc)[:200]) from None
    except DefusedXmlException as exc:
        raise BodyError("invalid_xml", f"refused: {exc!r}"[:200]) from None
    if _local(root) != "Envelope":
        raise BodyError("invalid_soap", f"root element is {_local(root)!r}, not a SOAP Envelope")
    soap_body = _child(root, "Body")
    if soap_body is None:
        raise BodyError("invalid_soap", "no SOAP Body")
    fault = _child(soap_body, "Fault")
    if fault is not None:
        raise BodyError("soap_fault", _fault_detail(fault))
    response = next(iter(soap_body), None)
    if response is None:
        raise BodyError("invalid_soap", "empty SOAP Body")
    result_map = _child(response, "Result")
    if result_map is None:  # named after the operation's part in other toolkits: the only child
        result_map = next(iter(response), None)
    result = _map(result_map, "Result map")
    status = _text(result.get("result"))
    if status is not None and status.strip().lower() != "success":
        message = " ".join((_text(result.get("resultData")) or "").split())
        raise BodyError("provider_error", f"result {status.strip()!r}: {message}"[:300])
    batch = _map(result.get("resultData"), "resultData").get(BATCH_KEY)
    if batch is None:
        raise BodyError("invalid_soap", f"no {BATCH_KEY} in resultData")
    fields = _map(batch, BATCH_KEY)

    count_text = (_text(fields.get("eventCount")) or "").strip()
    count: int | None = None
    if count_text:
        if not (count_text.isascii() and count_text.isdigit() and len(count_text) < 10):
            raise BodyError("invalid_soap", f"eventCount {count_text[:40]!r} is not a count")
        count = int(count_text)

    meta: dict[str, list[str]] = {}
    if "eventMeta" in fields:
        for kind, names in _map(fields["eventMeta"], "eventMeta").items():
            meta[kind.strip().upper()] = [name.strip() for name in (_text(names) or "").split(",")]

    encoded = _WHITESPACE.sub(b"", (_text(fields.get("eventData")) or "").encode("ascii", "replace"))
    try:
        data = base64.b64decode(encoded + b"=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BodyError("invalid_event_data", f"eventData is not base64: {exc}"[:200]) from None
    return count, meta, data


def row_notification(row: list[str], meta: dict[str, list[str]]) -> dict[str, str]:
    """One CSV row (its fields already decoded) as the notification the shared mapping reads; raises
    BodyError when the row has no type or its type has no column names."""
    kind = row[0].strip().upper()
    if not kind:
        raise BodyError("invalid_row", "row has no type in its first column")
    names = meta.get(kind)
    if names is None:
        raise BodyError("missing_event_meta", f"no eventMeta for type {row[0].strip()[:64]!r}")
    notification: dict[str, str] = {}
    for position, value in enumerate(row):
        name = names[position] if position < len(names) and names[position] else f"column {position + 1}"
        if position == 0 and field_key(name) != "type":
            name = "type"  # the first column is the type, whatever the meta calls it ("Event Type", or nothing)
        notification[name] = value
    keys = {field_key(name): name for name in reversed(notification)}
    if "eventdate" in keys:
        return notification
    own_date = keys.get(field_key(kind) + "date")
    if own_date is None:
        # Not named after its type (SOFTBOUNCE with a "Bounce Date", OPTOUT with an "Unsubscribe Date"):
        # the row's one date column that is not about the message's delivery or schedule, if it has one.
        dates = [name for key, name in keys.items() if key.endswith("date") and not key.startswith(_NOT_THE_EVENTS)]
        own_date = dates[0] if len(dates) == 1 else None
    if own_date is not None:
        notification[EVENT_DATE_FIELD] = notification[own_date]
    return notification


def adapt_batch(envelope: Envelope) -> AdaptResult:
    """Events of one getBatch response (``envelope.body``), in row order."""
    try:
        try:
            count, meta, data = parse_batch(envelope.body)
        except BodyError as error:
            return AdaptResult(failures=[Failure(error.reason, error.detail)])
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        failures: list[Failure] = []
        notifications: list[tuple[int, Any]] = []
        rows = 0
        # Latin-1 maps each byte to one character, so the csv module splits the bytes as they are and
        # each field goes back to its bytes to be decoded as UTF-8 (a bad byte costs only its row).
        text = io.StringIO(data.decode("latin-1"), newline="")
        reader = csv.reader(text, skipinitialspace=True, strict=True)
        index = 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:  # broken quoting: the reader goes on after the line
                rows += 1
                failures.append(Failure("invalid_row", str(exc)[:200], index))
                index += 1
                continue
            if row and any(value.strip() for value in row):
                rows += 1
                try:
                    fields = [value.encode("latin-1").decode("utf-8") for value in row]
                    notifications.append((index, row_notification(fields, meta)))
                except UnicodeDecodeError as exc:
                    failures.append(Failure("invalid_utf8", f"byte {exc.start}: {exc.reason}", index))
                except BodyError as error:
                    failures.append(Failure(error.reason, error.detail, index))
            index += 1
        if count is not None and count != rows:
            failures.append(Failure("event_count_mismatch", f"eventCount {count}, eventData has {rows} rows"))
        return map_notifications(envelope, notifications, failures)
    except Exception as exc:  # a bug must become a dead letter, never a crashed importer
        return AdaptResult(failures=[Failure("adapter_error", repr(exc)[:500])])
