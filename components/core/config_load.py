"""Reading stack config: from a key map, a parsed ``Pulumi.<stack>.yaml`` or the file itself, with every bad
key reported at once and by name; and the rows of the README's config reference, from the model."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    SecretStr,
    ValidationError,
)

from components.core.config import StackConfig
from components.core.config_fields import (
    NAMESPACE,
    SECRET_PLACEHOLDER,
    ConfigError,
)


class StackFileError(Exception):
    """A stack file that cannot be read, or whose config is bad; the message names the file."""


def _describe_allowed(model: type[BaseModel]) -> str:
    return ", ".join(sorted(model.model_fields))


def _model_at(path: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the key at ``path`` (to say what keys are allowed there)."""
    model: Any = StackConfig
    for part in path[:-1]:
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        model = _submodel(field.annotation)
        if model is None:
            return None
    return model


def _format_error(err: dict[str, Any]) -> str:
    loc = tuple(err["loc"])
    key = f"{NAMESPACE}:" + ".".join(str(p) for p in loc) if loc else f"{NAMESPACE}"
    kind = err["type"]
    if kind == "extra_forbidden":
        owner = _model_at(loc)
        allowed = _describe_allowed(owner) if owner else "see README config reference"
        return f"{key}: unknown key; allowed here: {allowed}"
    if kind == "missing":
        owner = _model_at(loc)
        desc = ""
        if owner is not None and str(loc[-1]) in owner.model_fields:
            field = owner.model_fields[str(loc[-1])]
            if field.annotation is SecretStr:
                return (
                    f"{key}: required secret is missing; set it with: pulumi config set --secret --path '{key}' <value>"
                )
            desc = field.description
        return f"{key}: required key is missing ({desc})" if desc else f"{key}: required key is missing"
    msg = err["msg"].removeprefix("Value error, ")
    got = err.get("input")
    if _is_secret_field(loc):
        return f"{key}: {msg} (the value is a secret and not shown)"
    if isinstance(got, str | int | float | bool) and not isinstance(got, SecretStr):
        return f"{key}: {msg} (got {got!r})"
    return f"{key}: {msg}"


def _is_secret_field(loc: tuple[Any, ...]) -> bool:
    """Whether an error's location is a secret field: its input must never reach a message."""
    if not loc:
        return False
    owner = _model_at(loc)
    field = owner.model_fields.get(str(loc[-1])) if owner is not None else None
    if field is None:
        return False
    ann = field.annotation
    return ann is SecretStr or SecretStr in getattr(ann, "__args__", ())


def parse_config(raw: Mapping[str, Any]) -> StackConfig:
    """Validate the namespace's keys (without the ``gpu-jupyterhub:`` prefix); raise ConfigError."""
    try:
        return StackConfig.model_validate(dict(raw))
    except ValidationError as e:
        raise ConfigError(_format_error(err) for err in e.errors()) from None


def _strip_secure(value: Any) -> Any:
    """Replace Pulumi ``{secure: ...}`` ciphertext with a placeholder; we never decrypt it here."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return SECRET_PLACEHOLDER
        return {k: _strip_secure(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_secure(v) for v in value]
    return value


def namespace_keys(config: Mapping[str, Any], *, decode_json: bool) -> dict[str, Any]:
    """Pick this project's keys from a flat Pulumi config map, dropping the namespace prefix."""
    out: dict[str, Any] = {}
    prefix = f"{NAMESPACE}:"
    for key, value in config.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix) :]
        if name.startswith("config:"):  # pulumi stores some keys as ns:config:key
            name = name[len("config:") :]
        if decode_json and isinstance(value, str) and value[:1] in ("{", "["):
            with contextlib.suppress(json.JSONDecodeError):
                value = json.loads(value)
        out[name] = value
    return out


def load_stack_file(data: Mapping[str, Any]) -> StackConfig:
    """Config from a parsed ``Pulumi.<stack>.yaml``; secure values become placeholders."""
    if not isinstance(data, Mapping):
        raise ConfigError(["stack file: top level must be a mapping with a `config:` key"])
    config = data.get("config") or {}
    if not isinstance(config, Mapping):
        raise ConfigError(["stack file: `config:` must be a mapping of namespace:key to value"])
    raw = _strip_secure(namespace_keys(config, decode_json=False))
    return parse_config(_fill_missing_secrets(raw, StackConfig))


def _submodel(ann: Any) -> type[BaseModel] | None:
    """The model a field holds (``Model`` or ``Model | None``), if any."""
    return next(
        (a for a in [ann, *getattr(ann, "__args__", ())] if isinstance(a, type) and issubclass(a, BaseModel)),
        None,
    )


# Optional secrets that a set key implies: registry.username needs registry.password, and so on.
_SECRET_PARTNERS = {"password": "username", "pullPassword": "pullUsername", "adminPassword": "adminUsers"}


def _fill_missing_secrets(raw: Any, model: type[BaseModel]) -> Any:
    """Placeholders for required secrets a stack file does not hold yet: the plan never needs their values
    (a deploy does, and reports each one missing by name)."""
    if not isinstance(raw, dict):
        return raw
    out = dict(raw)
    for name, field in model.model_fields.items():
        ann = field.annotation
        if ann is SecretStr and field.is_required() and name not in out:
            out[name] = SECRET_PLACEHOLDER
        partner = _SECRET_PARTNERS.get(name)
        if partner and out.get(partner) and name not in out:
            out[name] = SECRET_PLACEHOLDER  # an optional secret that goes with a key that is set
        sub = _submodel(ann)
        if sub is not None and isinstance(out.get(name), dict):
            out[name] = _fill_missing_secrets(out[name], sub)
    return out


def reference_rows(model: type[BaseModel] = StackConfig, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, default, description) for every leaf key: the README's config reference."""
    rows: list[tuple[str, str, str, str]] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        ann = field.annotation
        sub = _submodel(ann)
        type_name = _type_name(ann)
        if field.is_required():
            default = "required"
        elif isinstance(field.default, BaseModel):
            default = "see below"
        elif type_name.startswith("secret"):
            default = "secret"
        else:
            default = json.dumps(field.default)
        rows.append((key, type_name, default, field.description))
        if sub is not None:
            rows.extend(reference_rows(sub, prefix=f"{key}."))
    return rows


def _type_name(ann: Any) -> str:
    text = re.sub(r"components\.core\.config\w*\.", "", str(ann).replace("typing.", ""))
    text = re.sub(r"<class '([\w.]+)'>", r"\1", text)
    text = text.replace("pydantic.types.SecretStr", "secret string")
    text = text.replace(" | None", " (optional)")
    return text


def read_stack_file(stack_file: Path) -> StackConfig:
    """The config in a ``Pulumi.<stack>.yaml`` (secrets as placeholders), or a StackFileError saying what is wrong."""
    try:
        data = yaml.load(stack_file.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # a SafeLoader
    except OSError as e:
        raise StackFileError(f"cannot read stack file {stack_file}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise StackFileError(f"stack file {stack_file} is not UTF-8 text (byte {e.start})") from None
    except yaml.YAMLError as e:
        raise StackFileError(f"stack file {stack_file} is not valid YAML: {e}") from None
    try:
        return load_stack_file(data or {})
    except ConfigError as e:
        raise StackFileError(f"{stack_file}: {e}") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML where a key given twice is an error (PyYAML would silently keep the last one)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice (line {key_node.start_mark.line + 1})", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)
