"""tflite-int8-segments keeps every segment as a signature of one file (segment_file: one): each block range stored
and quantized once, one file's overhead, and every variant a signature that runs its chain in one call, with the
target's parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from restnet_compile import api
from restnet_compile.config.build import BuildConfig
from restnet_compile.export.graph_cost import variant_model
from restnet_compile.export.graph_memory import read_graphs
from restnet_compile.runtime import Bundle
from tests.integration.conftest import FAST


@pytest.fixture(scope="module")
def one_file(tmp_path_factory: pytest.TempPathFactory) -> api.BuildResult:
    cfg = BuildConfig.model_validate({"profile": "phone", "target": "tflite-int8-segments", **FAST})
    return api.build(cfg, tmp_path_factory.mktemp("segments"), cache=False)


def test_every_segment_is_a_signature_of_one_file(one_file: api.BuildResult) -> None:
    m, root = one_file.manifest, one_file.bundle_dir
    segments = {s.id: s for s in m.segments or ()}
    assert segments and {s.file for s in segments.values()} == {"segments.tflite"}
    assert not list(root.glob("seg-*.tflite"))
    graphs = read_graphs(root / "segments.tflite")
    chained = {v.id for v in m.shipped() if v.chain and len(v.chain) > 1}
    assert set(graphs) == set(segments) | chained  # a subgraph per segment, and one per variant that calls them
    for vid in chained:  # a variant's graph: its segments' operators in order, reading their constants
        v = m.variant(vid)
        ops = [op.name for s in v.chain or () for op in graphs[s].ops]
        assert [op.name for op in graphs[vid].ops if op.name != "QUANTIZE"] == ops
        read = sum(graphs[s].constant_bytes for s in v.chain or ())  # segments may share a small constant
        assert 0.99 * read <= graphs[vid].constant_bytes <= read
    assert m.bundle_model_bytes == (root / "segments.tflite").stat().st_size
    for s in segments.values():  # a segment's bytes are those of its own single-signature model
        assert s.model_bytes == len(variant_model(root / s.file, s.signature))
    # one file's tables instead of one each, and a variant's graph costs its tables, not its weights
    assert m.bundle_model_bytes < sum(s.model_bytes for s in segments.values()) + 4096 * len(chained)


def test_each_variant_runs_in_one_call_as_its_chain_would_within_parity(one_file: api.BuildResult) -> None:
    m = one_file.manifest
    stitched = [v for v in m.shipped() if v.kind == "stitched"]
    assert stitched and all(v.chain and len(v.chain) >= 2 for v in stitched)
    for v in m.shipped():
        assert v.parity is not None and v.parity.top1_agreement >= 0.98, v
        assert v.file == "segments.tflite" and v.signature  # one interpreter call
    bundle = Bundle.open(one_file.bundle_dir)
    x = np.load(one_file.bundle_dir / "reference.npz")["inputs"][:16]
    for v in stitched:
        one_call = bundle.run(x, v.id)
        as_chain = bundle._run_chain(bundle.get(v.id), x.transpose(0, 2, 3, 1))  # segment by segment, from Python
        (last,) = [s for s in m.segments or () if s.id == v.chain[-1]]
        # the same int8 computation; a requantization may round a tie the other way (one step of the output)
        assert np.abs(one_call - as_chain).max() <= last.output.scale * 1.001
        assert (one_call.argmax(1) == as_chain.argmax(1)).mean() >= 0.9
    assert all(c.ok for c in api.verify(one_file.bundle_dir))


def test_tflite_micro_refuses_one_file(tmp_path: Path) -> None:
    from restnet_compile.config.device import load_target
    from restnet_compile.errors import BadInputError

    text = (Path(__file__).parents[2] / "restnet_compile/builtin/targets/tflm-int8.yaml").read_text()
    custom = tmp_path / "tflm-one.yaml"
    custom.write_text(text + "segment_file: one\n")
    with pytest.raises(BadInputError, match="segment_file one is for LiteRT"):
        load_target(custom)
