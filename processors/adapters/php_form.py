"""Decodes application/x-www-form-urlencoded bodies written in PHP's array syntax into dicts and lists.

``event[0][type]=OPEN`` becomes ``{"event": {"0": {"type": "OPEN"}}}`` and ``List_Names[]=a&List_Names[]=b``
becomes ``{"List_Names": ["a", "b"]}``. Guarantees: strict UTF-8 (raw or percent-encoded; invalid ->
``BodyError("invalid_utf8")``), at most ``MAX_FIELDS`` fields and ``MAX_DEPTH`` bracket levels, time linear
in the body size, so a hostile body is refused with a reason instead of hanging or exhausting memory.

Decisions (where PHP's own ``$_POST`` rules are either lossy or surprising):
- Same name twice, or a name used both as a value and as an array: the last one wins, as in PHP.
- Names are kept as sent: PHP's rewriting of ``.`` and spaces to ``_`` is not copied, because the fields
  are passed through to events as they were written.
- A name that is not well-formed array syntax (``a[b``, ``[x]=1``, ``a[b]c``) is kept as one literal key
  instead of being half-parsed the way PHP does.
- Explicit indices (``event[0]``) make dicts keyed by the index text, ``[]`` makes lists; mixing both
  on one array turns the list into a dict keyed ``"0"``, ``"1"``..., which is how PHP numbers them.
"""

from __future__ import annotations

import email.policy
import re
from email import errors
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qsl, urlencode

from processors.adapters.json_body import BodyError, decode_text

# A cap on the fields of one form, high enough for a 10 MiB post of tens of thousands of notifications
# (700 Pure360 notifications of 15 fields already made 10,500), and low enough that the most hostile form
# of that many fields parses in well under a second (test_php_form).
MAX_FIELDS = 100_000
MAX_DEPTH = 32
# Bracket levels over all the fields of a form: the nesting work is per level, so 100,000 fields 32 deep
# (5 s) are refused, while a batch of thousands of ``event[i][field]`` notifications (2 levels) is read.
MAX_LEVELS = 400_000
_BOUNDARY = re.compile(r';\s*boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)
_BROKEN_MULTIPART = (errors.NoBoundaryInMultipartDefect, errors.StartBoundaryNotFoundDefect)
_BROKEN_PART = (errors.MissingHeaderBodySeparatorDefect,)
# Longest index that is treated as a list position; longer digit runs are plain dict keys, so a
# hostile index never reaches int() (which refuses 4,300+ digits) or allocates a huge list.
_MAX_INDEX_DIGITS = 9


# A base name followed only by complete [..] groups, none containing a bracket.
_ARRAY_NAME = re.compile(r"([^\[]+)((?:\[[^\[\]]*\])+)")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")


def split_name(name: str) -> list[str] | None:
    """``a[b][]`` -> ``["a", "b", ""]``; None when the name is not well-formed PHP array syntax."""
    if "[" not in name:
        return None
    match = _ARRAY_NAME.fullmatch(name)
    if match is None:
        return None
    groups = match.group(2)
    if groups.count("[") > MAX_DEPTH:
        raise BodyError("too_deep", f"form field name nested deeper than {MAX_DEPTH}")
    return [match.group(1), *_SEGMENT.findall(groups)]


def _is_index(key: str) -> bool:
    return 0 < len(key) <= _MAX_INDEX_DIGITS and key.isascii() and key.isdigit() and (key == "0" or key[0] != "0")


class _Builder:
    """Places values into nested containers; remembers the next ``[]`` position of dicts."""

    def __init__(self) -> None:
        self.root: dict[str, Any] = {}
        # id -> (the dict itself, next [] position). Holding the dict keeps its id from being reused
        # by a new dict after PHP's last-one-wins replaced it.
        self._next_index: dict[int, tuple[dict[str, Any], int]] = {}

    def _append_key(self, container: dict[str, Any]) -> str:
        known = self._next_index.get(id(container))
        # Computed once per dict, then counted: `a[x]=..&a[]=..` repeated stays linear.
        nxt = known[1] if known else 1 + max((int(k) for k in container if _is_index(k)), default=-1)
        self._next_index[id(container)] = (container, nxt + 1)
        return str(nxt)

    def _note_key(self, container: dict[str, Any], key: str) -> None:
        if not self._next_index:  # the common case: no [] was ever used on a dict
            return
        known = self._next_index.get(id(container))
        if known is not None and _is_index(key) and int(key) >= known[1]:
            self._next_index[id(container)] = (container, int(key) + 1)

    def _container_for(self, child: Any, next_key: str) -> dict[str, Any] | list[Any]:
        """The container to descend into for ``next_key``: the existing one when it fits, else a new one."""
        if isinstance(child, dict):
            return child
        if isinstance(child, list):
            if next_key == "" or (_is_index(next_key) and int(next_key) <= len(child)):
                return child
            # A name on a [] list: PHP arrays are maps, so the list becomes one, numbered as PHP does.
            converted = {str(i): v for i, v in enumerate(child)}
            self._next_index[id(converted)] = (converted, len(child))
            return converted
        return [] if next_key == "" else {}

    def put(self, parts: list[str], value: str) -> None:
        node: dict[str, Any] | list[Any] = self.root
        last = len(parts) - 1
        for depth, key in enumerate(parts):
            nxt = parts[depth + 1] if depth < last else None
            if isinstance(node, list):
                # _container_for only hands out a list when `key` is "" or a position within it.
                slot = len(node) if key == "" else int(key)
                current = node[slot] if slot < len(node) else None
                new: Any = value if nxt is None else self._container_for(current, nxt)
                if slot == len(node):
                    node.append(new)
                else:
                    node[slot] = new
            else:
                if key == "":
                    key = self._append_key(node)
                else:
                    self._note_key(node, key)
                new = value if nxt is None else self._container_for(node.get(key), nxt)
                node[key] = new
            if nxt is None:
                return
            node = new


def parse_php_form(body: bytes | str) -> dict[str, Any]:
    """Decodes a form body into nested dicts and lists; raises BodyError with the reason."""
    text = decode_text(body) if isinstance(body, bytes) else body
    # Unencoded whitespace is not part of any field (it would be %20 or +); senders append newlines.
    text = text.strip()
    if not text:
        raise BodyError("empty_body", "no content")
    try:
        pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict", max_num_fields=MAX_FIELDS)
    except UnicodeDecodeError as exc:
        raise BodyError("invalid_utf8", f"percent-encoded bytes: {exc.reason}") from None
    except ValueError:
        raise BodyError("too_many_fields", f"more than {MAX_FIELDS} form fields") from None
    builder = _Builder()
    levels = 0
    for name, value in pairs:
        parts = split_name(name)
        if parts is None:
            builder.root[name] = value
            continue
        levels += len(parts)
        if levels > MAX_LEVELS:
            raise BodyError("too_many_fields", f"more than {MAX_LEVELS} bracket levels over the form's fields")
        builder.put(parts, value)
    return builder.root


def parse_multipart_form(body: bytes, content_type: str) -> dict[str, Any] | None:
    """The fields of a multipart/form-data body (PHP's curl posts an array that way), decoded into the
    same PHP arrays as a form; None when the Content-Type is not multipart/form-data with a boundary.

    Read by the standard library's MIME parser. Parts with a ``filename`` are uploads, not notification
    fields, and are left out. Raises BodyError: ``too_many_fields``, ``invalid_multipart`` (a part
    without its blank line, a body without the boundary), ``invalid_utf8``.
    """
    if not content_type.lower().startswith("multipart/form-data") or _BOUNDARY.search(content_type) is None:
        return None
    head = b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n"
    message = BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    boundary = message.get_boundary() or ""
    if body.strip() in (b"", f"--{boundary}--".encode("latin-1", "replace")):
        return parse_php_form(b"")  # curl's body for an empty array: a form without fields
    parts = message.get_payload() if message.is_multipart() else None
    if not isinstance(parts, list) or any(isinstance(d, _BROKEN_MULTIPART) for d in message.defects):
        raise BodyError("invalid_multipart", "the body is not made of parts of its boundary")
    if len(parts) > MAX_FIELDS:
        raise BodyError("too_many_fields", f"more than {MAX_FIELDS} form fields")
    pairs: list[tuple[str, str]] = []
    for number, part in enumerate(parts):
        if any(isinstance(d, _BROKEN_PART) for d in part.defects):
            raise BodyError("invalid_multipart", f"part {number} has no blank line after its headers")
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or part.get_filename() is not None:
            continue
        try:
            pairs.append((name, (part.get_payload(decode=True) or b"").decode("utf-8")))
        except UnicodeDecodeError as exc:
            raise BodyError("invalid_utf8", f"multipart part {number}: {exc.reason}") from None
    return parse_php_form(urlencode(pairs))
