"""The JSON Schemas of `schemas/`, loaded once, with validators that resolve their `$ref`s."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"


@functools.cache
def schemas() -> dict[str, dict[str, Any]]:
    """Return every schema of `schemas/`, by file name."""
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(SCHEMA_DIR.glob("*.schema.json"))
    }


@functools.cache
def registry() -> Registry:
    """Return a registry holding every schema under its `$id`."""
    resources = [
        (schema["$id"], Resource.from_contents(schema, default_specification=DRAFT202012))
        for schema in schemas().values()
    ]
    return Registry().with_resources(resources)


@functools.cache
def validator(name: str) -> Draft202012Validator:
    """Return a validator for `schemas/<name>` (e.g. `event.schema.json`)."""
    return Draft202012Validator(schemas()[name], registry=registry())
