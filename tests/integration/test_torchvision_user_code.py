"""User code that imports torchvision itself needs no shim: a module path and a user's file, in a fresh process
(torchvision not imported yet, so the CPU torch build's missing ops would stop ``import torchvision``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

USER_FILE = """
import torchvision


def make():
    return torchvision.models.squeezenet1_1(num_classes=10)
"""

PROBE = """
import sys
from restnet_compile.models.registry import create_model
for spec in sys.argv[1:]:
    model = create_model(spec, input_shape=(3, 32, 32), num_classes=10)
    print(spec, len(model.blocks))
"""


def test_user_code_that_imports_torchvision_needs_no_shim(tmp_path: Path) -> None:
    """In a fresh process (torchvision not imported yet): a module path and a user file that import torchvision."""
    user = tmp_path / "user_tv.py"
    user.write_text(USER_FILE)
    specs = [f"{user}:make", "torchvision.models:squeezenet1_1"]  # the user's file first: nothing imported yet
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *specs], capture_output=True, text=True, cwd=ROOT, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [line.split()[0] for line in proc.stdout.splitlines()] == specs
