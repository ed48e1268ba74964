"""Write ``docs/config-reference.md`` from the build-config schema (``restnet_compile/config/build.py``).

``python scripts/gen_config_reference.py [--out FILE]``. Every row comes from the pydantic fields: path, type,
default, constraints and description; nested settings get their own section; fields that take a registered or
built-in name list the choices this version ships. The output depends only on the schema and the registries, so
``tests/unit/test_config_reference.py`` checks that the committed page is current.
"""

from __future__ import annotations

import argparse
import inspect
import json
import types
from collections.abc import Callable
from pathlib import Path
from typing import Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from restnet_compile.config.build import BuildConfig
from restnet_compile.config.device import builtin_names
from restnet_compile.data.dataset import DATASETS
from restnet_compile.models.registry import MODELS
from restnet_compile.pipeline.choices import registered_choices

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "config-reference.md"

#: Fields that take a name, and where the names this version ships come from.
CHOICES: dict[str, Callable[[], list[str]]] = {
    "large": MODELS.names,
    "small": MODELS.names,
    "dataset": DATASETS.names,
    "profile": lambda: builtin_names("profiles"),
    "profiles": lambda: builtin_names("profiles"),
    "target": lambda: builtin_names("targets"),
    "tune.adapter": lambda: registered_choices()["adapter"],
    "tune.recipe": lambda: registered_choices()["recipe"],
}
_BOUNDS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<=", "min_length": "length >=", "max_length": "length <="}

HEADER = """# Build config reference

Generated from the schema in `restnet_compile/config/build.py` by `python scripts/gen_config_reference.py`; do not
edit by hand. A build config is a YAML file (`restnet-compile build --config FILE`); every field is optional and
takes the default shown; an unknown field, a value of the wrong type or outside its constraints is refused with one
line naming the field (exit 2). Command-line options override the file.
"""


def type_name(annotation: object) -> str:
    """``int``, ``str | None``, ``"pareto" | "feasible"``, ``tuple[int, int, int]``, or the section's name."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        return f"{origin.__name__}[{', '.join(type_name(a) for a in args)}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def constraints(field: FieldInfo) -> str:
    """``>= 0, <= 1``-style bounds from the field's metadata."""
    found = []
    for item in field.metadata:
        for attr, sign in _BOUNDS.items():
            value = getattr(item, attr, None)
            if value is not None:
                found.append(f"{sign} {value}")
    return ", ".join(found)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{text}`" if text else ""


def _section(model: type[BaseModel], prefix: str) -> list[str]:
    """Rows of ``model``'s own fields, then one section per nested settings field."""
    lines = ["| field | type | default | constraints | description |", "|---|---|---|---|---|"]
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        path = prefix + name
        description = field.description or ""
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            nested.append((path, field.annotation))
            kind, default = "section", f"see [`{path}`](#{path.replace('.', '')})"
        else:
            kind, default = type_name(field.annotation), _code(json.dumps(field.default))
        if path in CHOICES:
            description += "; choices: " + ", ".join(f"`{c}`" for c in CHOICES[path]())
        row = [_code(path), _code(kind), default, _code(constraints(field)), description]
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    for path, sub in nested:
        lines += ["", f"## `{path}`", "", inspect.cleandoc(sub.__doc__ or ""), "", *_section(sub, path + ".")]
    return lines


def render() -> str:
    """The whole page."""
    top = ["## Top level", "", inspect.cleandoc(BuildConfig.__doc__ or ""), ""]
    return HEADER + "\n" + "\n".join(top + _section(BuildConfig, "")) + "\n"


def main() -> None:
    """Write the page (or ``--out``)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
