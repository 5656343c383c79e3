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
