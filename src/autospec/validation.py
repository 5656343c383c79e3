"""JSON-schema validation that also fills the schema's defaults (cohort and run configs)."""

from __future__ import annotations

import copy

import jsonschema


def _with_defaults(cls):
    """A validator class that also fills ``default`` values of absent properties (in place).

    A parent's default (``{}``) is filled first and then validated, so the defaults of its own
    properties are filled too.
    """
    validate_properties = cls.VALIDATORS["properties"]

    def properties(validator, props, instance, schema):
        if validator.is_type(instance, "object"):
            for name, sub in props.items():
                if isinstance(sub, dict) and "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, props, instance, schema)

    return jsonschema.validators.extend(cls, {"properties": properties})


DefaultFillingValidator = _with_defaults(jsonschema.Draft202012Validator)


def field_path(err: jsonschema.ValidationError) -> str:
    """The dotted path of the failing field (``training.epochs``, ``model.hidden[1]``); '' at the top."""
    parts: list[str] = []
    for p in err.absolute_path:
        parts.append(f"[{p}]" if isinstance(p, int) else (f".{p}" if parts else str(p)))
    return "".join(parts)


def describe(err: jsonschema.ValidationError) -> tuple[str, str]:
    """(field path, message) for one schema error, naming the missing or unknown field itself.

    jsonschema reports a missing or unknown key at its parent object; users need the key.
    """
    path, msg = field_path(err), err.message
    if err.validator == "required" and isinstance(err.instance, dict):
        missing = [r for r in err.validator_value if r not in err.instance]
        if missing:
            path, msg = f"{path}.{missing[0]}" if path else missing[0], "required field is missing"
    elif err.validator == "additionalProperties" and isinstance(err.instance, dict):
        known = set(err.schema.get("properties", {}))
        extra = [k for k in err.instance if k not in known]
        if extra:
            path = f"{path}.{extra[0]}" if path else str(extra[0])
            msg = f"unknown field (allowed: {', '.join(sorted(known))})"
    return path, msg


def fill_and_validate(block: dict, schema: dict) -> tuple[jsonschema.ValidationError, int] | None:
    """Fill ``block``'s defaults in place; return (the most relevant error, error count) or None."""
    errors = list(DefaultFillingValidator(schema).iter_errors(block))
    if not errors:
        return None
    return jsonschema.exceptions.best_match(errors), len(errors)


def more_problems(count: int) -> str:
    """The ' (and k more problem(s))' suffix of a one-line config error."""
    return f" (and {count - 1} more problem(s))" if count > 1 else ""
