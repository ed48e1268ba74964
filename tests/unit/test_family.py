"""Families of K anchors: the config's forms and refusals, ordering by FLOPs, the shared CKA pass, segments across
anchors and the anchors' line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from restnet_compile.config.build import BuildConfig, load_build_config
from restnet_compile.errors import BadInputError
from restnet_compile.export.segments import plan_segments
from restnet_compile.models import BlockSequence, create_model
from restnet_compile.pipeline.family import anchor_tags, load_family
from restnet_compile.pipeline.load import check_agree
from restnet_compile.report.anchors_line import LinePoint, line_at
from restnet_compile.similarity.cka import cka_matrices, cka_matrix
from restnet_compile.stitching import ADAPTERS, StitchedNet, StitchPoint
from restnet_compile.stitching.adapters import adapter_for

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "user_models"


def _refused(**fields: object) -> str:
    with pytest.raises(BadInputError) as err:
        load_build_config(None, **fields)
    return str(err.value)


def test_models_take_names_weights_and_mappings() -> None:
    config = BuildConfig(models=["demo-large-cnn", "demo-small-cnn=w.pt", {"name": "demo-vit", "split": ["a"]}])
    assert [(m.name, m.weights, m.split) for m in config.models or ()] == [
        ("demo-large-cnn", None, None),
        ("demo-small-cnn", "w.pt", None),
        ("demo-vit", None, ("a",)),
    ]
    assert config.pairs == "neighbours"


def test_family_refusals_are_one_line_naming_the_field() -> None:
    assert _refused(models=["demo-large-cnn"]) == "build config: models: give 2 to 8 anchors; got 1"
    nine = [f"m{i}" for i in range(9)]
    assert "give 2 to 8 anchors; got 9" in _refused(models=nine)
    twice = _refused(models=["demo-large-cnn", "demo-small-cnn", "demo-large-cnn"])
    assert twice == "build config: field 'models': demo-large-cnn is given twice; give each anchor once"
    with pytest.raises(ValueError, match=r"give `models` .* not both; also given: large"):
        BuildConfig.model_validate({"models": ["demo-large-cnn", "demo-small-cnn"], "large": "demo-vit"})


def test_command_line_family_replaces_the_files_pair(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "build.yaml"
    path.write_text("large: demo-vit\nsmall: demo-small-cnn\n")
    config = load_build_config(path, models=["demo-large-cnn", "demo-small-cnn"])
    assert config.models is not None and config.large == "demo-large-cnn"  # the pair fields are back to defaults
    path.write_text("models: [demo-vit, demo-small-cnn, demo-large-cnn]\n")
    assert load_build_config(path, large="demo-vit").models is None


def test_pair_dump_has_no_family_fields_and_family_dump_no_pair_fields() -> None:
    pair = BuildConfig().model_dump()
    assert "models" not in pair and "pairs" not in pair
    family = BuildConfig(models=["demo-large-cnn", "demo-small-cnn", "demo-vit"]).model_dump()
    assert {"models", "pairs"} <= set(family) and not {"large", "small", "large_weights"} & set(family)


def test_anchor_letters() -> None:
    assert anchor_tags(2) == ("L", "S")
    assert anchor_tags(3) == ("L", "M", "S")
    assert anchor_tags(8) == tuple("LMNOPQRS")
    with pytest.raises(ValueError):
        anchor_tags(9)


def test_family_is_ordered_by_measured_flops_not_by_position() -> None:
    family = load_family(BuildConfig(models=["demo-small-cnn", "demo-vit", "demo-large-cnn"]))
    assert [(a.id, a.tag, a.spec.name) for a in family.anchors] == [
        ("large", "L", "demo-large-cnn"),
        ("middle", "M", "demo-vit"),
        ("small", "S", "demo-small-cnn"),
    ]
    flops = [a.flops for a in family.anchors]
    assert flops == sorted(flops, reverse=True) and flops[-1] > 0
    assert [p.name for p in family.pairs] == ["L-M", "M-S"]
    assert [m.name for m in family.config.models or ()] == ["demo-large-cnn", "demo-vit", "demo-small-cnn"]
    every = load_family(family.config.model_copy(update={"pairs": "all"}))
    assert [p.name for p in every.pairs] == ["L-M", "L-S", "M-S"]


def test_two_models_in_either_order_are_the_pair_build() -> None:
    family = load_family(BuildConfig(models=["demo-small-cnn", "demo-large-cnn"]))
    assert family.is_pair and family.config.models is None
    assert family.config.config_hash() == BuildConfig().config_hash()
    assert family.config.model_dump() == BuildConfig().model_dump()


USER = f"{FIXTURES}/residual_cnn.py:ResNetMini"


def test_anchors_that_disagree_on_input_or_classes_are_refused_in_one_line() -> None:
    small = create_model("demo-small-cnn")
    other = BlockSequence(list(small.blocks), small.head, (1, 32, 32), "wide-input")
    with pytest.raises(BadInputError) as err:
        check_agree([create_model("demo-large-cnn"), small, other])
    assert str(err.value) == "models demo-large-cnn and wide-input take different inputs: 1x28x28 vs 1x32x32"
    seven = BlockSequence(list(small.blocks), nn.Sequential(small.head, nn.Linear(10, 7)), (1, 28, 28), "seven")
    with pytest.raises(BadInputError) as err:
        check_agree([small, seven])
    assert str(err.value) == "models demo-small-cnn and seven have different classes: 10 vs 7"


def test_family_anchor_without_weights_is_named_by_its_entry() -> None:
    with pytest.raises(BadInputError) as err:
        load_family(BuildConfig(models=["demo-large-cnn", "demo-small-cnn", USER], input_shape=(1, 28, 28)))
    assert str(err.value).startswith(
        f"model {USER} (models[2]): no weights given, so it would run with random weights; give its weights as "
        "models[2].weights"
    )


def test_one_cka_pass_gives_each_pairs_matrix_exactly() -> None:
    family = load_family(BuildConfig(models=["demo-large-cnn", "demo-vit", "demo-small-cnn"]))
    rng = np.random.default_rng(0)
    images = rng.random((24, 1, 28, 28), dtype=np.float32)
    batches = [images[:12], images[12:]]
    together = cka_matrices(list(family.models), [(0, 1), (1, 2), (0, 2)], batches)
    for (a, b), matrix in zip([(0, 1), (1, 2), (0, 2)], together, strict=True):
        alone = cka_matrix(family.models[a], family.models[b], batches)
        assert np.array_equal(matrix, alone)


def _stitch(front, back, i: int, j: int, tags: tuple[str, str]) -> StitchedNet:  # type: ignore[no-untyped-def]
    spec_f, spec_b = front.feature_specs()[i], back.feature_specs()[j]
    name = adapter_for(spec_f, spec_b)
    assert name is not None
    torch.manual_seed(0)
    return StitchedNet(front, back, StitchPoint(i, j, *tags), ADAPTERS.get(name)(spec_f, spec_b)).eval()


def test_segments_store_each_anchors_blocks_once_across_the_family() -> None:
    family = load_family(BuildConfig(models=["demo-large-cnn", "demo-vit", "demo-small-cnn"]))
    large, middle, small = family.models
    variants = {
        "large": large,
        "middle": middle,
        "small": small,
        "L2-M1": _stitch(large, middle, 2, 1, ("L", "M")),
        "M1-S2": _stitch(middle, small, 1, 2, ("M", "S")),
    }
    segments, chains = plan_segments(variants)
    assert chains["L2-M1"] == ("L0-2", "A-L2-M1", "M2-H")
    assert chains["M1-S2"] == ("M0-1", "A-M1-S2", "S3-H")
    assert chains["middle"] == ("M0-1", "M2-H")  # both stitches' cuts of the middle anchor, shared with it
    assert {s.model for s in segments.values()} == {"large", "middle", "small", "adapter"}
    assert [s.model for s in segments.values()][:2] == ["large", "large"]  # the large model's first, then adapters
    assert [s.model for s in segments.values()][-2:] == ["small", "small"]


def test_anchors_line_interpolates_between_neighbouring_anchors() -> None:
    line = [LinePoint("small", 1_000, 0.90), LinePoint("middle", 5_000, 0.94), LinePoint("large", 25_000, 0.99)]
    assert line_at(line, 3_000) == ("small-middle", pytest.approx(0.92))
    assert line_at(line, 15_000) == ("middle-large", pytest.approx(0.965))
    assert line_at(line, 500) is None and line_at(line, 30_000) is None


def test_cli_family_refusals_exit_2_in_one_line_and_write_nothing(tmp_path: Path, cli_in_process) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "o"
    one = cli_in_process("build", "--model", "demo-large-cnn", "--out", str(out))
    assert one.returncode == 2 and one.stderr.strip().endswith("models: give 2 to 8 anchors; got 1")
    unknown = cli_in_process("build", "--model", "demo-large-cnn", "--model", "demo-large-cnnn", "--out", str(out))
    assert unknown.returncode == 2 and "demo-large-cnnn" in unknown.stderr and len(unknown.stderr.splitlines()) == 1
    twice = cli_in_process("build", "--model", "demo-mid-cnn", "--model", "demo-mid-cnn", "--out", str(out))
    assert twice.returncode == 2 and "demo-mid-cnn is given twice" in twice.stderr
    survey = cli_in_process("analyze", "--model", "demo-mid-cnn", "--model", "demo-small-cnn")
    assert survey.returncode == 2 and "analyze surveys one pair" in survey.stderr
    assert not out.exists()


def test_blocks_of_a_family_lists_every_anchor() -> None:
    from restnet_compile import api

    listed = api.blocks(BuildConfig(models=["demo-large-cnn", "demo-mid-cnn", "demo-small-cnn"]))
    assert [(b.role, b.model, len(b.rows)) for b in listed] == [  # the blocks and the head
        ("models[0]", "demo-large-cnn", 7),
        ("models[1]", "demo-mid-cnn", 6),
        ("models[2]", "demo-small-cnn", 5),
    ]


def test_a_pair_of_the_family_plans_with_its_anchors_letters_in_either_order() -> None:
    from restnet_compile.pipeline.candidates import plan

    family = load_family(BuildConfig(models=["demo-large-cnn", "demo-mid-cnn", "demo-small-cnn"]))
    lm, ms = family.pairs
    cka = np.random.default_rng(0).uniform(size=(6, 5))
    ids = [
        c.point.variant_id for c in plan(family.config, cka, lm.big.model, lm.little.model, tags=("L", "M")).candidates
    ]
    assert ids and all(i.startswith("L") and "-M" in i for i in ids)
    sn = family.config.model_copy(update={"plan": family.config.plan.model_copy(update={"order": "small-large"})})
    rev = plan(sn, cka, lm.big.model, lm.little.model, tags=("L", "M"))
    assert rev.front is lm.little.model and all(c.point.variant_id.startswith("M") for c in rev.candidates)
    assert all("-L" in c.point.variant_id for c in rev.candidates)
    assert (ms.big.tag, ms.little.tag) == ("M", "S")
