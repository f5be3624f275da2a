"""The JSON Schema kept in the repository is the one the model produces."""

from __future__ import annotations

import json
from pathlib import Path

import espwire
from espwire.event import event_json_schema

SCHEMA_FILE = Path(espwire.__file__).parent / "schemas" / "event.schema.json"


def test_schema_file_matches_the_model() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == event_json_schema(), "run `make schema` and commit the file"
