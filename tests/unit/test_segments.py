"""Segments: the planner cuts each donor once for all variants, and chains reproduce every variant exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from restnet_compile.export.segments import plan_segments, segment_id, segment_inputs
from restnet_compile.models.demo import demo_large_cnn, demo_small_cnn
from restnet_compile.stitching.adapters import ADAPTERS
from restnet_compile.stitching.net import StitchedNet, StitchPoint


@pytest.fixture(scope="module")
def variants() -> dict[str, torch.nn.Module]:
    large, small = demo_large_cnn().eval(), demo_small_cnn().eval()
    fl, fs = large.feature_specs(), small.feature_specs()

    def stitched(i: int, j: int) -> StitchedNet:
        return StitchedNet(large, small, StitchPoint(i, j), ADAPTERS.get("conv1x1")(fl[i], fs[j])).eval()

    return {"large": large, "small": small, "L3-S2": stitched(3, 2), "L1-S2": stitched(1, 2), "L1-S0": stitched(1, 0)}


def test_each_shared_range_is_one_segment(variants: dict[str, torch.nn.Module]) -> None:
    segments, chains = plan_segments(variants)
    assert list(segments) == ["L0-1", "L2-3", "L4-H", "A-L1-S0", "A-L1-S2", "A-L3-S2", "S0", "S1-2", "S3-H"]
    assert chains == {
        "large": ("L0-1", "L2-3", "L4-H"),
        "small": ("S0", "S1-2", "S3-H"),
        "L3-S2": ("L0-1", "L2-3", "A-L3-S2", "S3-H"),
        "L1-S2": ("L0-1", "A-L1-S2", "S3-H"),
        "L1-S0": ("L0-1", "A-L1-S0", "S1-2", "S3-H"),
    }
    s = segments["S3-H"]
    assert (s.model, s.start, s.stop, s.head) == ("small", 3, 4, True)
    assert (segments["L2-3"].start, segments["L2-3"].stop, segments["L2-3"].head) == (2, 4, False)


def test_a_chain_computes_its_variant_exactly(variants: dict[str, torch.nn.Module]) -> None:
    segments, chains = plan_segments(variants)
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        for vid, chain in chains.items():
            y = x
            for sid in chain:
                y = segments[sid].module(y)
            assert torch.equal(y, variants[vid](x)), vid


def test_only_anchors_make_whole_model_segments(variants: dict[str, torch.nn.Module]) -> None:
    segments, chains = plan_segments({"large": variants["large"]})
    assert list(segments) == ["L0-H"] and chains == {"large": ("L0-H",)}
    # without the large anchor, nothing runs the large head: the prefix is named by its blocks
    segments, chains = plan_segments({"small": variants["small"], "L1-S2": variants["L1-S2"]})
    assert chains == {"small": ("S0-2", "S3-H"), "L1-S2": ("L0-1", "A-L1-S2", "S3-H")}
    assert segment_id("S", 4, 5, 4) == "SH" and segment_id("L", 2, 3, 6) == "L2"


def test_each_segment_is_calibrated_on_every_input_it_sees(variants: dict[str, torch.nn.Module]) -> None:
    segments, chains = plan_segments(variants)
    images = np.random.default_rng(0).random((6, 1, 28, 28), dtype=np.float32)
    inputs = segment_inputs(segments, chains, images)
    assert inputs["L0-1"].shape == (6, 1, 28, 28)  # the images, once
    assert inputs["S1-2"].shape == (12, 8, 14, 14)  # after S0 (small) and after A-L1-S0
    assert inputs["S3-H"].shape == (24, 32, 7, 7)  # after A-L3-S2, A-L1-S2, and S1-2 on its two paths
    with torch.no_grad():
        first = variants["small"].blocks[0](torch.from_numpy(images)).numpy()
    np.testing.assert_array_equal(inputs["S1-2"][:6], first)


def test_every_block_cuts_each_donor_between_all_its_blocks(variants: dict[str, torch.nn.Module]) -> None:
    segments, chains = plan_segments(variants, every_block=True)
    assert chains["large"] == ("L0", "L1", "L2", "L3", "L4", "L5-H")  # the head stays with the last block
    assert chains["L3-S2"] == ("L0", "L1", "L2", "L3", "A-L3-S2", "S3-H")
    # a variant added later (L4-S2) needs no new cut: only its adapter is new
    more = {**variants, "L4-S2": StitchedNet(
        variants["large"], variants["small"], StitchPoint(4, 2),
        ADAPTERS.get("conv1x1")(variants["large"].feature_specs()[4], variants["small"].feature_specs()[2]),
    ).eval()}  # fmt: skip
    added, _ = plan_segments(more, every_block=True)
    assert set(added) - set(segments) == {"A-L4-S2"}
