"""The workflow config: guarded, validated against config/schemas/config.schema.yaml, defaults filled.

Snakemake reads config files itself, with its own YAML loader, before any workflow code runs (see
docs/robustness.md for what that means for hostile files). The Snakefile therefore

1. re-reads every config file named on the command line with the bounded loader
   (:func:`check_config_sources`): a YAML bomb, a recursive alias, a duplicate key or a YTE
   template (``__use_yte__``, Python code that Snakemake evaluates) is refused naming the file;
   the merged config is walked within a node budget too (``--config`` values);
2. validates the merged config (:func:`validate_workflow_config`): JSON-schema with defaults
   filled, strict integers, numbers that YAML 1.1 left as strings (``lr: 1e-3``) read as YAML 1.2
   does, the run schema's ``training`` / ``recording`` definitions by ``$ref`` (one source of
   truth for run settings; per-pair overrides are checked against them without defaults), and
   the text fields that reach file names and command lines checked for characters no path should
   hold. Every error is one line naming the field.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import jsonschema
from referencing import Registry, Resource

from ..errors import InputError
from ..safe_yaml import load_yaml, yaml12_scalar
from ..validation import DefaultFillingValidator, describe, first_non_finite, more_problems, packaged_schema

#: budgets of a workflow config (the default study's merged config has ~500 values, depth 6)
MAX_NODES = 20_000
MAX_DEPTH = 32
#: characters refused in text that becomes a file name or a command-line argument
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# ------------------------------------------------------------------------------ 1. sources
def check_tree(doc: Any, what: str = "workflow config", max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH) -> None:
    """Refuse a config whose expanded tree (shared sub-trees counted each time) is over budget."""
    stack: list[tuple[Any, int]] = [(doc, 0)]
    seen = 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        if seen > max_nodes:
            raise InputError(f"{what} refused: more than {max_nodes:,} values (a YAML bomb?)")
        if depth > max_depth:
            raise InputError(f"{what} refused: nested deeper than {max_depth} levels")
        if isinstance(node, Mapping):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list | tuple):
            stack.extend((v, depth + 1) for v in node)


def check_config_sources(configfiles: Iterable[os.PathLike[str] | str], config: Mapping[str, Any]) -> None:
    """Re-read each named config file with the bounded loader; walk the config within budget."""
    for f in configfiles:
        doc = load_yaml(Path(f), "workflow config", max_nodes=MAX_NODES, max_depth=MAX_DEPTH)
        if doc is not None and not isinstance(doc, Mapping):
            raise InputError(f"{f}: workflow config must be a mapping, not a {type(doc).__name__}")
        if isinstance(doc, Mapping) and "__use_yte__" in doc:
            raise InputError(
                f"{f}: workflow config refused: YTE templates (__use_yte__) are Python code, which Snakemake "
                "has already evaluated while reading the file; AutoSpec configs are plain YAML"
            )
    check_tree(config)


# ------------------------------------------------------------------------------ 2. schema
def _registry(schema_path: Path) -> tuple[dict[str, Any], Registry]:
    """The workflow schema (with its file URI as ``$id``) and a registry that reads ``$ref`` ed files."""
    schema = load_yaml(schema_path, "workflow config schema")
    schema["$id"] = schema_path.resolve().as_uri()

    def retrieve(uri: str) -> Resource:
        path = Path(url2pathname(urlparse(uri).path))
        if path.parent.parts[-2:] == ("autospec", "schemas"):
            # autospec's own schemas: the installed package's copy, which the steps validate with
            return Resource.from_contents(packaged_schema(path.name))
        return Resource.from_contents(load_yaml(path, "schema"))

    return schema, Registry(retrieve=retrieve).with_resource(schema["$id"], Resource.from_contents(schema))  # type: ignore[call-arg]


def _at(doc: Any, path: list[Any]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def _coerce(err: jsonschema.ValidationError, config: dict[str, Any]) -> bool:
    """Replace a string that YAML 1.2 reads as the number / bool the schema wants; True if done."""
    if err.validator != "type" or not isinstance(err.instance, str) or not err.absolute_path:
        return False
    wanted = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
    value = yaml12_scalar(err.instance.strip())
    ok = (
        (isinstance(value, bool) and "boolean" in wanted)
        or (isinstance(value, int) and not isinstance(value, bool) and {"integer", "number"} & set(wanted))
        or (isinstance(value, float) and "number" in wanted)
    )
    if not ok:
        return False
    path = list(err.absolute_path)
    _at(config, path[:-1])[path[-1]] = value
    return True


def _strip_defaults(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _strip_defaults(v) for k, v in schema.items() if k != "default"}
    if isinstance(schema, list):
        return [_strip_defaults(v) for v in schema]
    return schema


def _override_schemas() -> dict[str, dict[str, Any]]:
    """The run schema's training / recording blocks without defaults, minus what the workflow sets."""
    props = packaged_schema("run.schema.yaml")["properties"]
    out = {}
    for block, fixed in (("training", "seed"), ("recording", "groups")):
        sch = _strip_defaults(copy.deepcopy(props[block]))
        sch["properties"].pop(fixed, None)
        out[block] = sch
    return out


def _check_overrides(config: dict[str, Any]) -> None:
    """Per-pair ``training`` / ``recording`` overrides: fields of the run schema, no defaults filled."""
    schemas = _override_schemas()
    for kind, families in (config.get("experiments") or {}).items():
        for model, pair in (families or {}).items():
            for block, schema in schemas.items():
                if block not in pair:
                    continue
                errors = list(DefaultFillingValidator(schema).iter_errors(pair[block]))
                if errors:
                    import jsonschema

                    path, msg = describe(jsonschema.exceptions.best_match(errors))
                    where = f"experiments.{kind}.{model}.{block}" + (f".{path}" if path else "")
                    raise InputError(f"config field {where}: {msg}{more_problems(len(errors))}")


def check_text_fields(config: dict[str, Any]) -> None:
    """Refuse characters that no file name, wildcard or argument of the workflow should hold."""
    fields: list[tuple[str, Any]] = [("study", config.get("study")), ("results", config.get("results"))]
    for name, c in (config.get("cohorts") or {}).items():
        fields += [(f"cohorts.{name}.config", c.get("config")), (f"cohorts.{name}.name", c.get("name"))]
    for name, d in (config.get("datasets") or {}).items():
        fields += [(f"datasets.{name}.{k}", d.get(k)) for k in ("idx_images", "idx_labels")]
    for field, value in fields:
        if isinstance(value, str) and _CONTROL.search(value):
            bad = _CONTROL.search(value).group()  # type: ignore[union-attr]
            raise InputError(f"config field {field}: contains the control character {bad!r}; refused")
    results = config["results"]
    if "{" in results or "}" in results:
        raise InputError(f"config field results: {results!r} contains a brace, which Snakemake reads as a wildcard")
    if ":" in results:
        raise InputError(
            f"config field results: {results!r} contains ':', which separates run directories in autospec plot --panel"
        )
    if "," in config["study"]:
        raise InputError(
            f"config field study: {config['study']!r} contains ',', which separates autospec plot's --params"
        )
    here = Path.cwd().resolve()
    if Path(results).resolve() in (here, *here.parents):
        raise InputError(f"config field results: {results!r} is the working directory or above it; use a subdirectory")


def validate_workflow_config(config: dict[str, Any], schema_path: os.PathLike[str] | str) -> dict[str, Any]:
    """Validate ``config`` in place (defaults filled, number strings read as numbers); returns it.

    Raises
    ------
    InputError
        ``config field <dotted.path>: <what is wrong>`` (one line).
    """
    schema, registry = _registry(Path(schema_path))
    for _ in range(1000):  # each pass fixes one YAML 1.1 number string, or stops
        errors = list(DefaultFillingValidator(schema, registry=registry).iter_errors(config))
        if not errors or not any(_coerce(e, config) for e in errors):
            break
    if errors:
        import jsonschema

        path, msg = describe(jsonschema.exceptions.best_match(errors))
        raise InputError(f"config field {path or '<top level>'}: {msg}{more_problems(len(errors))}")
    bad = first_non_finite(config)
    if bad is not None:
        raise InputError(f"config field {bad[0]}: {bad[1]} is not a finite number")
    _check_overrides(config)
    check_text_fields(config)
    return config


# ------------------------------------------------------------------------------ 3. outside Snakemake
def merge(config: dict[str, Any], overwrite: Mapping[str, Any]) -> dict[str, Any]:
    """Snakemake's update_config: mappings merged key by key, any other value replaced."""
    for key, value in overwrite.items():
        if isinstance(value, Mapping):
            sub = config.get(key)
            config[key] = merge(dict(sub) if isinstance(sub, Mapping) else {}, value)
        else:
            config[key] = value
    return config


def read_config_files(
    workflow: os.PathLike[str] | str, configfiles: Iterable[os.PathLike[str] | str]
) -> tuple[dict[str, Any], Path]:
    """The workflow's config/config.yaml with ``configfiles`` merged over it in order (as
    ``snakemake --configfile`` merges them), each read with the bounded loader; and the schema's path.

    Not yet validated: pass both to :func:`autospec.workflow.load_study`.
    """
    base = Path(workflow) / "config" / "config.yaml"
    schema = Path(workflow) / "config" / "schemas" / "config.schema.yaml"
    if not schema.is_file():
        raise InputError(f"--workflow {workflow}: no config/schemas/config.schema.yaml there")
    config: dict[str, Any] = {}
    for f in [base, *map(Path, configfiles)]:
        doc = load_yaml(f, "workflow config", max_nodes=MAX_NODES, max_depth=MAX_DEPTH)
        if doc is None:
            continue
        if not isinstance(doc, Mapping):
            raise InputError(f"{f}: workflow config must be a mapping, not a {type(doc).__name__}")
        if "__use_yte__" in doc:
            raise InputError(f"{f}: workflow config refused: YTE templates (__use_yte__) are Python code")
        merge(config, doc)
    check_tree(config)
    return config, schema
