"""What stays light: the device runtime and the listing verbs import neither torch nor TensorFlow, and a verb whose
extra is not installed says in one line which extra to install."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from restnet_compile.cli.base import missing_module_message, requires, run_guarded
from restnet_compile.errors import BadInputError

HEAVY = "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'tensorflow', 'onnx2tf'}))"


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)


def test_runtime_does_not_import_torch_or_tensorflow() -> None:
    proc = _run("import sys, restnet_compile.runtime\n" + HEAVY)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize("args", [["--help"], ["profiles"], ["targets"], ["profiles", "show", "phone"]])
def test_listing_verbs_import_neither_torch_nor_tensorflow(args: list[str]) -> None:
    code = (
        "import sys\n"
        "from restnet_compile.cli import cli\n"
        "try:\n"
        f"    cli.main({args!r}, standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n" + HEAVY
    )
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[]"


def test_the_import_check_detects_torch() -> None:
    # the checks above can fail: importing torch first makes the probe name it
    proc = _run("import sys, torch, restnet_compile.runtime\nfrom restnet_compile.cli import cli\n" + HEAVY)
    assert proc.stdout.strip() == "['torch']"


@pytest.mark.parametrize(("module", "extra"), [("torch", "compile"), ("onnxruntime.capi", "onnx"), ("ray", "ray")])
def test_missing_module_message_names_the_extra(module: str, extra: str) -> None:
    line = missing_module_message(module)
    assert line.startswith(f"{module.split('.')[0]} is not installed")
    assert line.endswith(f"pip install 'restnet-compile[{extra}]'") and "\n" not in line


def test_requires_refuses_before_the_verb_runs() -> None:
    ran: list[int] = []
    verb = requires("json", "restnet_no_such_module")(lambda: ran.append(1))
    with pytest.raises(BadInputError, match=r"restnet_no_such_module is not installed.*\[compile\]"):
        verb()
    assert ran == []
    assert requires("json")(lambda: 7)() == 7


def _group(exc: Exception) -> click.Group:
    @click.group()
    def cli() -> None:
        pass

    @cli.command("go")
    def go() -> None:
        raise exc

    return cli


def test_an_extra_missing_mid_verb_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["restnet-compile", "go"])
    assert run_guarded(_group(ModuleNotFoundError("No module named 'onnxruntime'", name="onnxruntime"))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: onnxruntime is not installed; install the 'onnx' extra: pip install 'restnet-compile[onnx]'"]


def test_a_missing_module_of_our_own_is_a_bug_with_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["restnet-compile", "go"])
    missing = ModuleNotFoundError("No module named 'restnet_compile.nope'", name="restnet_compile.nope")
    assert run_guarded(_group(missing)) == 1
    assert "Traceback" in capsys.readouterr().err


# What the device runtime may import, and nothing else: the standard library, numpy, the interpreters, Pillow (`run
# --input image.png`) and, of the package, the bundle's standard-library types, _util and errors.
RUNTIME_ALLOWED_EXTERNAL = {"numpy", "ai_edge_litert", "tflite_runtime", "onnxruntime", "PIL"}
RUNTIME_ALLOWED_OWN = (
    "restnet_compile.runtime",
    "restnet_compile.bundle.manifest",
    "restnet_compile.bundle.segment_info",
    "restnet_compile.bundle._codec",
    "restnet_compile._util",
    "restnet_compile.errors",
)


def _runtime_imports() -> set[str]:
    """Every module the runtime package imports, directly or through the package's own modules it imports."""
    grimp = pytest.importorskip("grimp")  # import-linter's graph
    graph = grimp.build_graph("restnet_compile", include_external_packages=True, cache_dir=None)
    seen, todo = set(), ["restnet_compile.runtime", *graph.find_descendants("restnet_compile.runtime")]
    while todo:
        module = todo.pop()
        for imported in graph.find_modules_directly_imported_by(module) - seen:
            seen.add(imported)
            if imported.startswith("restnet_compile."):
                todo.append(imported)
    return seen


def test_the_runtime_imports_only_its_allow_list() -> None:
    imported = _runtime_imports()
    own = {m for m in imported if m.startswith("restnet_compile.")}
    external = {m.split(".")[0] for m in imported - own} - set(sys.stdlib_module_names)
    assert sorted(m for m in own if not m.startswith(RUNTIME_ALLOWED_OWN)) == []
    assert sorted(external - RUNTIME_ALLOWED_EXTERNAL) == []
    assert "numpy" in external  # the graph was read (an empty one would pass)
