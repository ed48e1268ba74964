"""Latency calibration: measurements CSV, the fit, the calibrated profile, and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchlib.stats import spearman
from click.testing import CliRunner

from restnet_compile.cli import cli
from restnet_compile.cli.base import run_guarded
from restnet_compile.config.device import load_profile
from restnet_compile.cost.calibrate import calibrate_profile, read_measurements
from restnet_compile.cost.latency import fit_latency_model, mdape, roofline_ms
from restnet_compile.errors import EXIT_BAD_INPUT, BadInputError
from tests.manifests import bundle_with_terms

HOST = load_profile("host")
# Made-up variants: (MACs, bytes) per op, from 3 to 40 ops, 0.1 to 30 MMACs.
TERMS = {
    f"v{i}": [(int(macs), int(moved))] * n_ops
    for i, (macs, moved, n_ops) in enumerate(
        [(2e5, 4e4, 3), (1e6, 1e5, 8), (3e5, 2e5, 12), (8e5, 5e4, 20), (2e6, 3e5, 6), (5e5, 1e5, 40)]
    )
}
TRUE = HOST.latency_model.model_copy(update={"efficiency": 0.03, "op_overhead": 0.012, "invoke_overhead": 0.05})


def _csv(path: Path, rows: dict[str, float], extra: str = "") -> Path:
    lines = [f"variant,avg,p50,p90{extra}"] + [
        f"{k},{v * 1e3 * 1.1:.3f},{v * 1e3:.3f},{v * 1.3e3:.3f}" for k, v in rows.items()
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_fit_recovers_the_model_that_made_the_measurements() -> None:
    measured = {k: roofline_ms(t, TRUE) for k, t in TERMS.items()}
    fit = fit_latency_model(TERMS, measured, HOST.latency_model, percentile_factor=1.3)
    assert fit.mdape_after < 0.01 < fit.mdape_before
    assert fit.model.efficiency == pytest.approx(0.03, rel=0.05)
    assert fit.model.op_overhead == pytest.approx(0.012, rel=0.05)
    assert fit.model.percentile_factor == 1.3
    assert fit.model.peak_macs == HOST.latency_model.peak_macs  # data-sheet figures are kept


def test_chained_variants_are_fitted_as_one_call_per_segment() -> None:
    calls = {"v0": 3, "v2": 2, "v4": 4}  # variants stored as chains of 3, 2 and 4 segments
    measured = {k: roofline_ms(t, TRUE, invokes=calls.get(k, 1)) for k, t in TERMS.items()}
    assert measured["v0"] - roofline_ms(TERMS["v0"], TRUE) == pytest.approx(2 * 0.05)
    fit = fit_latency_model(TERMS, measured, HOST.latency_model, None, calls)
    assert fit.mdape_after < 0.01
    assert fit.model.invoke_overhead == pytest.approx(0.05, rel=0.05)
    assert fit.model.op_overhead == pytest.approx(0.012, rel=0.05)
    one_call = fit_latency_model(TERMS, measured, HOST.latency_model, None)  # chains fitted as one call each
    assert one_call.mdape_after > fit.mdape_after


def test_statistics() -> None:
    assert mdape([1.1, 2.0, 2.7], [1.0, 2.0, 3.0]) == pytest.approx(0.1)
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [40, 30, 20, 10]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [5, 5, 6]) == pytest.approx(0.866, abs=1e-3)  # ties share their rank


def test_read_measurements_uses_p50_and_percentiles(tmp_path: Path) -> None:
    m = read_measurements(_csv(tmp_path / "m.csv", {"a": 2.0, "b": 4.0}))
    assert m["a"].median_ms == pytest.approx(2.0)
    assert m["b"].percentiles_ms[90] == pytest.approx(5.2)


def test_calibrated_profile_carries_its_percentile_factor(tmp_path: Path) -> None:
    measured = {k: roofline_ms(t, TRUE) for k, t in TERMS.items()}
    cal, _ = calibrate_profile(HOST, read_measurements(_csv(tmp_path / "m.csv", measured)), TERMS, "m.csv")
    assert cal.latency_model.percentile_factor == pytest.approx(1.3)
    assert cal.latency_model.calibration["source"] == "m.csv"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("variant,p50\na,3\n", "missing column 'avg'"),
        ("variant,avg,colour\na,3,red\n", "unknown column 'colour'"),
        ("variant,avg\na,3\nb,fast\n", "row 3, column 'avg': 'fast' is not a number"),
        ("variant,avg\na,-3\n", "row 2, column 'avg': '-3' must be a positive number"),
        ("variant,avg\na,3\na,4\n", "row 3: variant 'a' appears twice"),
        ("variant,avg\n", "no rows"),
        ("variant,avg\na,3,4\n", "row 2 has more fields than the header"),
    ],
)
def test_bad_measurements_name_the_field_or_row(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(BadInputError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        read_measurements(path)


def _bundle(tmp_path: Path) -> Path:
    return bundle_with_terms(tmp_path / "bundle", TERMS)


def _run(args: list[str]) -> int:
    import sys

    old = sys.argv
    sys.argv = ["restnet-compile", *args]
    try:
        return run_guarded(cli)
    finally:
        sys.argv = old


def test_cli_writes_a_profile_that_loads_and_predicts_better(tmp_path: Path) -> None:
    measured = {k: roofline_ms(t, TRUE) for k, t in TERMS.items()}
    csv = _csv(tmp_path / "m.csv", measured)
    out = tmp_path / "host-cal.yaml"
    result = CliRunner().invoke(
        cli, ["calibrate", "--profile", "host", "--bundle", str(_bundle(tmp_path)), "--measurements", str(csv),
              "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    cal = load_profile(out)
    assert cal.name == "host"
    after = [roofline_ms(TERMS[k], cal.latency_model) for k in measured]
    assert mdape(after, list(measured.values())) < 0.01
    assert "median abs. error" in result.output


def test_cli_bad_csv_exits_2_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "m.csv"
    csv.write_text("variant,avg,speed\nv0,3,1\n")
    out = tmp_path / "cal.yaml"
    code = _run(["calibrate", "-p", "host", "--bundle", str(_bundle(tmp_path)), "--measurements", str(csv),
                 "--out", str(out)])  # fmt: skip
    assert code == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown column 'speed'" in err[0]
    assert not out.exists() and not list(tmp_path.glob(".cal.yaml*"))


def test_cli_unknown_variant_and_device_profile_without_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = _bundle(tmp_path)
    csv = _csv(tmp_path / "m.csv", {"v0": 1.0, "v1": 2.0, "nope": 3.0})
    out = tmp_path / "cal.yaml"
    assert _run(["calibrate", "-p", "phone", "--bundle", str(bundle), "--measurements", str(csv),
                 "--out", str(out)]) == EXIT_BAD_INPUT  # fmt: skip
    assert "measured variant 'nope' is not in the bundle" in capsys.readouterr().err
    assert _run(["calibrate", "-p", "phone", "--bundle", str(bundle), "--out", str(out)]) == EXIT_BAD_INPUT
    assert "pass --measurements" in capsys.readouterr().err
    assert not out.exists()
