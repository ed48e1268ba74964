"""Strict JSON <-> frozen dataclasses, checked against the dataclasses' annotations (standard library only).

Supported annotations: the dataclasses themselves, ``str``, ``int``, ``float`` (an int is accepted), ``bool``,
``X | None``, ``tuple[X, ...]``, fixed ``tuple[X, Y]``, ``dict[str, X]`` and ``Any`` (any JSON value, copied).
Field metadata: ``{"json": key}`` when the JSON key is not the attribute name; :data:`OPTIONAL` for a field that may
be absent (``None`` here, and written absent rather than ``null``).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any

#: Field metadata of a field that may be absent from the JSON: ``None`` here, and never written as ``null``.
OPTIONAL = {"optional": True}


class FieldError(ValueError):
    """A JSON value does not fit the annotations; the message starts with the field's path, quoted."""


def encode(value: Any) -> Any:
    """Plain JSON values for a dataclass (recursively); tuples become lists, absent optional fields are left out."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.metadata.get("json", f.name): encode(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not (f.metadata.get("optional") and getattr(value, f.name) is None)
        }
    if isinstance(value, list | tuple):
        return [encode(x) for x in value]
    if isinstance(value, dict):
        return {k: encode(x) for k, x in value.items()}
    return value


def decode(cls: type, data: Any) -> Any:
    """An instance of the dataclass ``cls`` from JSON values.

    Raises:
        FieldError: a missing, unknown, null or mistyped field, named by its path (``variants[2].stitch.cka``).
    """
    return _decode_object(cls, data, "")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _decode_object(cls: type, data: Any, path: str) -> Any:
    if not isinstance(data, Mapping):
        raise FieldError(f"{path or '(top level)'!r} must be an object")
    hints = _hints(cls)
    fields = {f.metadata.get("json", f.name): f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            name = f"{path}.{key}" if path else key
            raise FieldError(f"{name!r} is unknown; valid fields here: {', '.join(sorted(fields))}")
    values = {}
    for key, f in fields.items():
        name = f"{path}.{key}" if path else key
        if key not in data:
            if f.metadata.get("optional"):
                continue
            raise FieldError(f"{name!r} is missing")
        tp = _without_none(hints[f.name]) if f.metadata.get("optional") else hints[f.name]
        values[f.name] = _decode(tp, data[key], name)
    return cls(**values)


def _without_none(tp: Any) -> Any:
    """``X`` for ``X | None`` (the only unions supported)."""
    return next(a for a in typing.get_args(tp) if a is not type(None))


def _decode(tp: Any, value: Any, name: str) -> Any:
    if tp is Any:
        return copy.deepcopy(value)
    if typing.get_origin(tp) in (types.UnionType, typing.Union):
        if value is None:
            return None
        tp = _without_none(tp)
    if value is None:
        raise FieldError(f"{name!r} is null")
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _decode_object(tp, value, name)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple:
        if not isinstance(value, list):
            raise FieldError(f"{name!r} must be a list, got {value!r:.40}")
        if args[-1] is not Ellipsis and len(value) != len(args):
            raise FieldError(f"{name!r} must have {len(args)} entries, got {len(value)}")
        items = [args[0]] * len(value) if args[-1] is Ellipsis else list(args)
        return tuple(_decode(t, x, f"{name}[{i}]") for i, (t, x) in enumerate(zip(items, value, strict=True)))
    if origin is dict:
        if not isinstance(value, dict):
            raise FieldError(f"{name!r} must be an object, got {value!r:.40}")
        return {k: _decode(args[1], x, f"{name}.{k}") for k, x in value.items()}
    if not _is_instance(value, tp):
        raise FieldError(f"{name!r} must be {tp.__name__}, got {value!r:.40}")
    return value


def _is_instance(value: Any, tp: type) -> bool:
    if isinstance(value, bool):
        return tp is bool
    return isinstance(value, int | float) if tp is float else isinstance(value, tp)
