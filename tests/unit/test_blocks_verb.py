"""``restnet-compile blocks``: the tables a user reads before choosing ``split:``, and the split they reflect."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.conftest import CliCall
from tests.unit.fixture_models import SPECS

MODEL = ["--input-shape", "1,28,28", "--num-classes", "10"]


def test_blocks_prints_each_blocks_name_output_and_multiply_adds(tmp_path: Path, cli_in_process: CliCall) -> None:
    proc = cli_in_process("blocks", "--large", SPECS["residual"], *MODEL, "--model", "large", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].endswith("(input 1x28x28): 4 blocks and a head")
    assert [line.split()[1] for line in lines[2:]] == ["relu", "layer1", "layer2", "layer3", "logits"]
    assert "map 64x7x7" in lines[5] and lines[6].split()[0] == "head"
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_blocks_follows_the_configs_split_and_speaks_json(tmp_path: Path, cli_in_process: CliCall) -> None:
    config = tmp_path / "build.yaml"
    config.write_text(f"large: {SPECS['residual']}\nlarge_split: [layer2]\ninput_shape: [1, 28, 28]\nnum_classes: 10\n")
    proc = cli_in_process("blocks", "--config", str(config), "--model", "large", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (table,) = json.loads(proc.stdout)
    assert table["role"] == "large" and table["input_shape"] == [1, 28, 28]
    assert [r["name"] for r in table["rows"]] == ["layer2", "layer3", "head"]  # the last block ends at the head
    assert sum(r["macs"] for r in table["rows"]) > 9_000_000


def test_blocks_names_a_split_module_that_does_not_exist(tmp_path: Path, cli_in_process: CliCall) -> None:
    config = tmp_path / "build.yaml"
    config.write_text(f"large: {SPECS['residual']}\nlarge_split: [layer9]\ninput_shape: [1, 28, 28]\nnum_classes: 10\n")
    proc = cli_in_process("blocks", "--config", str(config), "--model", "large", cwd=tmp_path)
    assert proc.returncode == 2 and "layer9" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
