"""The committed config reference is what the generator writes from the schema now."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_config_reference", ROOT / "scripts" / "gen_config_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_config_reference_is_current() -> None:
    committed = (ROOT / "docs" / "config-reference.md").read_text(encoding="utf-8")
    assert committed == _generator().render(), "run: python scripts/gen_config_reference.py"


def test_every_config_field_is_described_in_the_reference() -> None:
    from pydantic import BaseModel

    from restnet_compile.config.build import BuildConfig

    def paths(model: type[BaseModel], prefix: str = "") -> list[str]:
        out = []
        for name, field in model.model_fields.items():
            assert field.description, f"{prefix}{name} has no description"
            out.append(prefix + name)
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                out += paths(field.annotation, f"{prefix}{name}.")
        return out

    page = _generator().render()
    for path in paths(BuildConfig):
        assert f"| `{path}` |" in page
