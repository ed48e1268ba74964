"""A stitched variant that fails the target's parity rule is dropped with its reason and the rest ships; with
``strict_parity`` (``--strict-parity``) the build fails with exit code 4 and publishes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from restnet_compile import api
from restnet_compile.config.build import BuildConfig
from tests.integration.conftest import FAST

TARGETS = Path(__file__).resolve().parents[2] / "targets"


def _tight_target(phone: api.BuildResult, out: Path) -> tuple[Path, str, float]:
    """tflite-int8 with a top-1 agreement threshold that exactly one stitched variant of ``phone`` misses: its path,
    that variant and the threshold."""
    agreement = {v.id: v.parity.top1_agreement for v in phone.manifest.shipped() if v.parity is not None}
    ranked = sorted(agreement, key=agreement.get)  # type: ignore[arg-type]
    worst, next_worst = ranked[0], ranked[1]
    assert phone.manifest.variant(worst).kind == "stitched", agreement
    assert agreement[worst] < agreement[next_worst], agreement
    threshold = round((agreement[worst] + agreement[next_worst]) / 2, 5)
    spec = yaml.safe_load((TARGETS / "tflite-int8.yaml").read_text())
    spec.update(name="tflite-int8-tight", parity={"min_top1_agreement": threshold})
    path = out / "tight.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path, worst, threshold


def test_a_stitch_that_fails_parity_is_dropped_and_the_rest_ships(
    phone_bundle: api.BuildResult, phone_cache: Path, tmp_path: Path
) -> None:
    target, worst, threshold = _tight_target(phone_bundle, tmp_path)
    config = BuildConfig.model_validate({"profile": "phone", "target": str(target), **FAST})
    result = api.build(config, tmp_path / "out", cache=phone_cache)
    m = result.manifest
    dropped = m.variant(worst)
    agreement = phone_bundle.manifest.variant(worst).parity.top1_agreement  # type: ignore[union-attr]
    reason = f"fails parity on tflite-int8-tight: int8 top-1 agreement {agreement:.1%} < {threshold:.0%}"
    assert not dropped.selected and dropped.reasons == (reason,) and dropped.file is None
    shipped = {v.id for v in m.shipped()}
    assert shipped == {v.id for v in phone_bundle.manifest.shipped()} - {worst}
    assert all(v.parity is not None and v.parity.top1_agreement >= threshold for v in m.shipped())
    written = json.loads((result.bundle_dir / "manifest.json").read_text())
    assert [v["reasons"] for v in written["variants"] if v["id"] == worst] == [[reason]]
    from ai_edge_litert.interpreter import Interpreter

    signatures = set(Interpreter(model_path=str(result.bundle_dir / "variants.tflite")).get_signature_list())
    assert signatures == {v.signature for v in m.shipped()} and worst not in signatures
    report = (result.bundle_dir / "report.md").read_text()
    assert f"| {worst} |" in report and reason in report


def test_strict_parity_fails_the_build_with_exit_code_4(
    phone_bundle: api.BuildResult, phone_cache: Path, tmp_path: Path
) -> None:
    target, worst, _ = _tight_target(phone_bundle, tmp_path)
    out = tmp_path / "out"
    cli = [sys.executable, "-m", "restnet_compile", "build", "--profile", "phone", "--target", str(target)]
    config = tmp_path / "fast.yaml"
    config.write_text(yaml.safe_dump(FAST))
    args = [*cli, "--config", str(config), "--out", str(out), "--cache-dir", str(phone_cache), "--quiet"]
    proc = subprocess.run([*args, "--strict-parity"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 4, proc.stderr[-2000:]
    assert f"variant {worst} fails parity on target tflite-int8-tight: int8 top-1 agreement" in proc.stderr
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("field", [True, False])
def test_strict_parity_is_a_config_field(field: bool) -> None:
    assert BuildConfig.model_validate({"strict_parity": field}).strict_parity is field
