"""JSON-schema validation that also fills the schema's defaults (cohort, run and workflow configs).

Integers are strict: ``3.0`` or ``1e11`` (a float once YAML 1.2 reads it) is not an integer here,
though JSON-schema allows integral floats; a width or epoch count must be written as one.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Iterator, Mapping
from importlib import resources
from typing import Any

import jsonschema

from .safe_yaml import load_yaml


@functools.cache
def packaged_schema(name: str) -> dict[str, Any]:
    """A JSON-schema shipped in ``autospec/schemas/`` (read once; shared: do not modify it)."""
    schema: dict[str, Any] = load_yaml(
        resources.files("autospec").joinpath("schemas", name).read_text(), f"schema {name}"
    )
    return schema


def _with_defaults(cls: Any) -> Any:  # jsonschema has no py.typed marker: its classes are Any to mypy
    """A validator class that also fills ``default`` values of absent properties (in place).

    A parent's default (``{}``) is filled first and then validated, so the defaults of its own
    properties are filled too.
    """
    validate_properties = cls.VALIDATORS["properties"]

    def properties(validator: Any, props: dict[str, Any], instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
        if validator.is_type(instance, "object"):
            for name, sub in props.items():
                if isinstance(sub, dict) and "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, props, instance, schema)

    return jsonschema.validators.extend(cls, {"properties": properties})


def _strict_integer(checker: Any, instance: object) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


_STRICT_TYPES = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _strict_integer)
DefaultFillingValidator = _with_defaults(
    jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=_STRICT_TYPES)
)

#: longest message kept from a schema error (they quote the offending value, which may be huge)
MAX_MESSAGE = 240


def _key(key: object) -> str:
    """A mapping key as it appears in a field path; quoted when it holds unprintable characters."""
    text = str(key)
    return text if text.isprintable() and text else repr(text)


def field_path(err: jsonschema.ValidationError) -> str:
    """The dotted path of the failing field (``training.epochs``, ``model.hidden[1]``); '' at the top."""
    parts: list[str] = []
    for p in err.absolute_path:
        parts.append(f"[{p}]" if isinstance(p, int) else (f".{_key(p)}" if parts else _key(p)))
    return "".join(parts)


def describe(err: jsonschema.ValidationError) -> tuple[str, str]:
    """(field path, message) for one schema error, naming the missing or unknown field itself.

    jsonschema reports a missing or unknown key at its parent object; users need the key.
    """
    path, msg = field_path(err), err.message
    if err.validator is None or err.schema is False:  # a `false` subschema: the field is not allowed here
        msg = "not allowed here"
    elif (
        err.validator in ("const", "oneOf", "anyOf", "not")
        and isinstance(err.schema, dict)
        and "x-message" in err.schema
    ):
        msg = str(err.schema["x-message"])  # a schema's own wording of the refusal
    elif err.validator in ("oneOf", "anyOf"):  # jsonschema would print the whole block here
        msg = f"matches {'none' if err.validator == 'anyOf' else 'not exactly one'} of the allowed forms ({err.validator})"
    if err.validator == "required" and isinstance(err.instance, dict):
        missing = [r for r in err.validator_value if r not in err.instance]
        if missing:
            path, msg = f"{path}.{_key(missing[0])}" if path else _key(missing[0]), "required field is missing"
    elif err.validator == "additionalProperties" and isinstance(err.instance, dict):
        known = set(err.schema.get("properties", {}))
        extra = [k for k in err.instance if k not in known]
        if extra:
            path = f"{path}.{_key(extra[0])}" if path else _key(extra[0])
            msg = f"unknown field (allowed: {', '.join(sorted(known))})"
    msg = " ".join(msg.split())
    return path, msg if len(msg) <= MAX_MESSAGE else msg[: MAX_MESSAGE - 3] + "..."


def fill_and_validate(
    block: dict[str, Any], schema: Mapping[str, Any], registry: Any = None
) -> tuple[jsonschema.ValidationError, int] | None:
    """Fill ``block``'s defaults in place; return (the most relevant error, error count) or None.

    ``registry`` (a ``referencing.Registry``) resolves ``$ref`` s to other schema files.
    """
    kwargs: dict[str, Any] = {} if registry is None else {"registry": registry}
    errors = list(DefaultFillingValidator(schema, **kwargs).iter_errors(block))
    if not errors:
        return None
    return jsonschema.exceptions.best_match(errors), len(errors)


def more_problems(count: int) -> str:
    """The ' (and k more problem(s))' suffix of a one-line config error."""
    return f" (and {count - 1} more problem(s))" if count > 1 else ""


def first_non_finite(doc: Any, path: str = "") -> tuple[str, float] | None:
    """(dotted field path, value) of the first inf or nan number in a config, or None."""
    if isinstance(doc, float) and not math.isfinite(doc):
        return path or "<top level>", doc
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, value in items:
        sub = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if path else str(key)
        found = first_non_finite(value, sub)
        if found is not None:
            return found
    return None
