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


def test_ctrl_c_exits_130_in_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["restnet-compile", "go"])
    assert run_guarded(_group(KeyboardInterrupt())) == 130
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("interrupted: nothing half-written was published")


LIGHT = HEAVY.replace("'onnx2tf'}", "'onnx2tf', 'pydantic', 'yaml'}")


@pytest.mark.parametrize("args", [["profiles"], ["targets"], ["profiles", "show", "phone"]])
def test_listing_verbs_need_neither_pydantic_nor_yaml(args: list[str]) -> None:
    """The runtime-only install has neither: both are made unimportable here, as there."""
    code = (
        "import sys\n"
        "sys.modules.update({'pydantic': None, 'yaml': None})\n"
        "from restnet_compile.cli import cli\n"
        "try:\n"
        f"    cli.main({args!r}, standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules if sys.modules[m] is not None} & "
        "{'torch', 'tensorflow', 'pydantic', 'yaml'}))\n"
    )
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == "[]" and len(lines) > 3, proc.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["build", "--target", "tflm-int9"], "unknown target 'tflm-int9'; valid choices: onnx-fp16"),
        (["build", "--profile", "phnoe"], "unknown profile 'phnoe'; valid choices: host, jetson, mcu, phone"),
        (["build", "--large", "demo-large-cn"], "unknown model 'demo-large-cn'; valid choices: demo-hybrid-vit"),
        (["analyze", "--small", "resnet81"], "unknown model 'resnet81'"),
    ],
)
def test_a_misspelt_name_is_refused_before_torch_is_imported(args: list[str], needle: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    code = (
        "import sys\n"
        "from restnet_compile.cli import cli\n"
        "from restnet_compile.cli.base import run_guarded\n"
        f"sys.argv = ['restnet-compile', *{args!r}, '--out', {str(tmp_path / 'o')!r}]\n"
        "code = run_guarded(cli)\n" + HEAVY + "\nprint(code)\n"
    )
    proc = _run(code)
    assert proc.stdout.split("\n")[-3:] == ["[]", "2", ""], proc.stdout + proc.stderr
    assert proc.stderr.startswith(f"error: {needle}") and proc.stderr.count("\n") == 1, proc.stderr
    assert not (tmp_path / "o").exists()


def test_an_invalid_profile_file_is_refused_before_torch_is_imported(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from restnet_compile.config.device import builtin_text

    profile = tmp_path / "neg.yaml"
    profile.write_text(builtin_text("profiles", "phone").replace("budget: 5ms", "budget: -5ms"))
    code = (
        "import sys\n"
        "from restnet_compile.cli import cli\n"
        "from restnet_compile.cli.base import run_guarded\n"
        f"sys.argv = ['restnet-compile', 'build', '--profile', {str(profile)!r}, '--out', {str(tmp_path / 'o')!r}]\n"
        "code = run_guarded(cli)\n" + HEAVY + "\nprint(code)\n"
    )
    proc = _run(code)
    assert proc.stdout.split("\n")[-3:] == ["[]", "2", ""], proc.stdout + proc.stderr
    assert proc.stderr == (
        f"error: profile {profile}: field 'latency.budget': duration '-5ms' must be greater than zero, e.g. '20ms'\n"
    )


#: What the device runtime may import, directly or through the modules it imports: the standard library, numpy, the
#: interpreters, Pillow, and of this package the runtime itself, the bundle's standard-library types, _util and errors.
RUNTIME_EXTERNAL = {"numpy", "PIL", "ai_edge_litert", "tflite_runtime", "onnxruntime"}
RUNTIME_OWN = (
    "restnet_compile.runtime",
    "restnet_compile.bundle._codec",
    "restnet_compile.bundle.manifest",
    "restnet_compile.bundle.segment_info",
    "restnet_compile.bundle.patch",
    "restnet_compile._util",
    "restnet_compile.errors",
)


def _outside_the_runtime_allow_list(modules: set[str]) -> list[str]:
    def allowed(m: str) -> bool:
        top = m.split(".")[0]
        if top != "restnet_compile":
            return top in sys.stdlib_module_names or top in RUNTIME_EXTERNAL
        return any(m == own or m.startswith(own + ".") for own in RUNTIME_OWN)

    return sorted(m for m in modules if not allowed(m))


def test_the_runtime_imports_only_its_allow_list() -> None:
    """Every module the runtime reaches, on the import graph import-linter checks (imports inside functions too)."""
    import grimp

    graph = grimp.build_graph("restnet_compile", include_external_packages=True, cache_dir=None)
    reached = graph.find_upstream_modules("restnet_compile.runtime", as_package=True)
    assert "numpy" in reached and "restnet_compile.bundle.manifest" in reached  # the graph is the real one
    assert _outside_the_runtime_allow_list(reached) == []


def test_the_allow_list_check_names_what_is_outside_it() -> None:
    reached = {"numpy", "json", "rich", "torch.nn", "restnet_compile.bundle.patch_make", "restnet_compile.bundle.patch"}
    assert _outside_the_runtime_allow_list(reached) == ["restnet_compile.bundle.patch_make", "rich", "torch.nn"]
