"""Config loading for the training stages: dataclass defaults, then the YAML `--config`, then
`key=value` overrides (dotted keys for nested fields). Unknown keys are errors.

    cfg = load_config(CPTConfig, "configs/tiny/cpt.yaml", ["max_steps=20", "lora.r=8"])
    write_config(cfg, run_dir / "config.yaml")

Override values are parsed as YAML, so `lora.target_parameters=[]`, `adapter=null` and
`learning_rate=1e-4` mean what they look like.
"""

from __future__ import annotations

import dataclasses
import math
import datetime as dt
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from wikitune.errors import WikituneError

T = TypeVar("T")


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """`["a.b=1", "c=[x, y]"]` -> `{"a": {"b": 1}, "c": ["x", "y"]}`."""
    out: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise WikituneError(f"override {item!r} is not key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as err:
            raise WikituneError(f"override {item!r}: value is not valid YAML ({err.problem})") from err
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise WikituneError(f"override {item!r} conflicts with another override of {part}")
        node[parts[-1]] = value
    return out


def merge_dicts(base: dict, extra: dict) -> dict:
    """`base` updated by `extra`, nested mappings merged key by key."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_dicts(out[key], value)
        else:
            out[key] = value
    return out


def _check_type(where: str, value: Any, hint: Any) -> Any:
    """Coerce/validate one value against a (simple) type hint; raise a one-line error."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_type(where, value, arg)
            except WikituneError as err:
                errors.append(str(err))
        raise WikituneError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is dict:
        if not isinstance(value, dict):
            raise WikituneError(f"{where} must be a mapping, got {value!r}")
        _key, item = typing.get_args(hint) or (str, Any)
        return {str(k): _check_type(f"{where}.{k}", v, item) for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return build(hint, value or {}, where)
    if origin is list:
        if not isinstance(value, list):
            raise WikituneError(f"{where} must be a list, got {value!r}")
        (item,) = typing.get_args(hint) or (Any,)
        return [_check_type(f"{where}[{i}]", v, item) for i, v in enumerate(value)]
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise WikituneError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise WikituneError(f"{where} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 2e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise WikituneError(f"{where} must be a number, got {value!r}")
        if not math.isfinite(value):  # YAML's .nan / .inf: no setting of ours means them
            raise WikituneError(f"{where} must be a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if isinstance(value, (dt.date, dt.datetime)):  # YAML reads 2025-08-05 as a date
            return value.isoformat()
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise WikituneError(f"{where} must be a string, got {value!r}")
        return str(value)
    return value


def build(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Instantiate dataclass `cls` from a (nested) dict, checking keys and simple types."""
    if not isinstance(data, dict):
        raise WikituneError(f"{where or 'config'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = f"{where}." if where else ""
        raise WikituneError(
            f"unknown config key(s) {', '.join(prefix + k for k in unknown)}; "
            f"valid: {', '.join(prefix + k for k in fields)}"
        )
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        hint = hints[name]
        key = f"{where}.{name}" if where else name
        if dataclasses.is_dataclass(hint):
            kwargs[name] = build(hint, value or {}, key)
        else:
            kwargs[name] = _check_type(key, value, hint)
    return cls(**kwargs)


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Defaults of `cls`, updated by the YAML file `path`, then by `key=value` `overrides`.

    Raises:
        WikituneError: a missing or malformed file, an unknown key, a value of the wrong type,
            or a value the dataclass's `__post_init__` rejects.
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise WikituneError(f"config {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise WikituneError(f"config {path} is not valid YAML: {str(err).splitlines()[0]}") from err
        if not isinstance(data, dict):
            raise WikituneError(f"config {path} must be a mapping of keys to values")
    data = merge_dicts(data, parse_overrides(overrides or []))
    return build(cls, data)


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain YAML-able data, every default filled in."""
    return dataclasses.asdict(cfg)


def write_config(cfg: Any, path: str | Path) -> Path:
    """Write the resolved config as YAML (the run directory's `config.yaml`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(to_dict(cfg), allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def field_help(cls: type) -> dict[str, str]:
    """Each field's help: the attribute docstring written under it in the class source. A field
    inherited from a base dataclass (CPTConfig's from TrainSettings) has the help written there,
    unless the subclass redefines it with its own."""
    import ast
    import inspect
    import textwrap

    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):  # bases first, so that a subclass's own help wins
        if not dataclasses.is_dataclass(klass):
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:]):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) \
                    and isinstance(nxt, ast.Expr) and isinstance(getattr(nxt, "value", None), ast.Constant) \
                    and isinstance(nxt.value.value, str):
                out[node.target.id] = " ".join(nxt.value.value.split())
    return out
