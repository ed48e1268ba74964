"""The documentation stays true: links resolve, shown commands exist, generated pages are up to date.

* every relative link in README.md, docs/*.md and bench/README.md points to a file that exists, and an ``#anchor``
  into a Markdown file names one of its headings;
* every ``restnet-compile`` command in a fenced ``sh`` block of README.md or docs/*.md, and in inline code of
  README.md, names a verb (and sub-command) and options that its ``--help`` lists; every ``make`` target shown
  exists in the Makefile;
* bench/README.md is exactly what ``bench/gen_readme.py`` writes from bench/results/.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from pathlib import Path

import click
import pytest

from restnet_compile.cli import cli

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", ROOT / "bench" / "README.md", *(ROOT / "docs").glob("*.md")])
COMMAND_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
INLINE_CODE = re.compile(r"`([^`\n]+)`")


def _prose(text: str) -> str:
    """The Markdown without fenced blocks and inline code, where links are links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, re.M)}


def _links(page: Path) -> list[str]:
    return [t for t in LINK.findall(_prose(page.read_text(encoding="utf-8"))) if not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in _links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def _help(path: list[str]) -> str:
    """The ``--help`` text of ``restnet-compile PATH...`` (rendered without running any command)."""
    ctx = click.Context(cli, info_name="restnet-compile")
    cmd: click.Command = cli
    for name in path:
        assert isinstance(cmd, click.Group) and name in cmd.commands, f"no command {' '.join(path)}"
        cmd = cmd.commands[name]
        ctx = click.Context(cmd, info_name=name, parent=ctx)
    return cmd.get_help(ctx)


def _options(help_text: str) -> set[str]:
    section = help_text.split("Options:", 1)[1].split("Commands:", 1)[0]
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", section))


def _commands(page: Path) -> list[str]:
    """restnet-compile command lines shown in ``sh`` blocks (and, in the README, in inline code)."""
    text = page.read_text(encoding="utf-8")
    bodies = [body.replace("\\\n", " ") for lang, body in FENCE.findall(text) if lang == "sh"]  # continued lines
    lines = [line for body in bodies for line in body.splitlines()]
    if page.name == "README.md":
        lines += [c for c in INLINE_CODE.findall(FENCE.sub("", text)) if c.startswith("restnet-compile ")]
    out = []
    for line in lines:
        line = re.split(r"\s#", line, maxsplit=1)[0]
        out += [part.strip() for part in re.split(r"&&|;", line) if part.strip()]
    return out


def _check(command: str) -> list[str]:
    words = shlex.split(command.replace("[", " ").replace("]", " ").replace("|", " "))
    program = words[0].rsplit("/", 1)[-1]
    if program == "make":
        targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
        return [f"make {w}: no such target" for w in words[1:] if w not in targets]
    if program != "restnet-compile":
        return []
    path = [words[1]]
    group = cli.commands.get(words[1])
    if group is None:
        return [f"{command}: no verb {words[1]}"]
    rest = words[2:]
    if isinstance(group, click.Group) and rest and rest[0] in group.commands:
        path.append(rest.pop(0))
    valid = _options(_help(path))
    return [f"{command}: {' '.join(path)} has no option {w}" for w in rest if w.startswith("-") and w not in valid]


@pytest.mark.parametrize("page", COMMAND_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_shown_commands_name_real_verbs_and_options(page: Path) -> None:
    commands = _commands(page)
    problems = [p for c in commands for p in _check(c)]
    assert not problems, "; ".join(problems)


def test_readme_shows_the_set_up_and_build_commands() -> None:
    shown = _commands(ROOT / "README.md")
    assert "make demo" in shown and "make test" in shown
    assert any(c.startswith("restnet-compile build") for c in shown)


def test_the_command_check_catches_a_wrong_option_and_verb() -> None:
    assert _check("restnet-compile build --profile phone --colour red")
    assert _check("restnet-compile frobnicate")
    assert _check("make no-such-target")
    assert not _check("restnet-compile profiles show phone")


def test_readme_stays_short_and_narrow() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150
    assert [n for n, line in enumerate(lines, 1) if len(line) > 120] == []


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_readme", ROOT / "bench" / "gen_readme.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_readme", module)
    spec.loader.exec_module(module)
    return module


def test_bench_readme_is_what_the_generator_writes() -> None:
    expected = _generator().render()
    actual = (ROOT / "bench" / "README.md").read_text(encoding="utf-8")
    assert actual == expected, "bench/README.md is out of date: run python bench/gen_readme.py"


def test_make_bench_runs_every_benchmark_the_page_shows_but_those_it_names() -> None:
    recipe = (ROOT / "Makefile").read_text(encoding="utf-8").split("\nbench:", 1)[1].split("\n\n", 1)[0]
    ran = [line.strip().removeprefix("$(BIN)/") for line in recipe.splitlines()[1:]]
    gen = _generator()
    assert ran == [*gen.make_commands(), "python bench/gen_readme.py"]
    manual = [s for s in gen.SECTIONS.values() if s.manual]
    assert manual and all(f"- {s.title} (" in gen.render() for s in manual)  # the page says which, and why


def test_bench_readme_generator_refuses_results_without_a_section(tmp_path: Path) -> None:
    (tmp_path / "new_benchmark.json").write_text("{}")
    with pytest.raises(ValueError, match=r"new_benchmark\.json"):
        _generator().render(tmp_path)


def _where_to_add_snippets() -> list[str]:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Where to add", 1)[1].split("\n## ", 1)[0]
    return [body for lang, body in FENCE.findall(section) if lang == "python"]


def test_every_where_to_add_snippet_runs_and_registers_what_it_says() -> None:
    import torch

    from restnet_compile.models.blocks import FeatureSpec
    from restnet_compile.stitching.adapters.base import ADAPTERS

    snippets = _where_to_add_snippets()
    assert snippets, "docs/architecture.md shows no snippet under 'Where to add'"
    before = set(ADAPTERS.names())
    try:
        for code in snippets:
            exec(compile(code, "docs/architecture.md", "exec"), {"__name__": "docs_snippet"})
        added = sorted(set(ADAPTERS.names()) - before)
        assert added, "the adapter snippet registers no adapter"
        src, dst = FeatureSpec("map", (4, 6, 6)), FeatureSpec("map", (3, 6, 6))
        x = torch.randn(32, 4, 6, 6)
        y = torch.nn.functional.conv2d(x, torch.randn(3, 4, 1, 1)) + 0.5  # a 1x1 map with a bias: fits exactly
        for name in added:
            cls = ADAPTERS.get(name)
            assert cls.name == name and cls.joins == ("map", "map")  # what register_adapter records
            adapter = cls(src, dst)
            assert adapter.least_squares_init(x, y) > 0.99
            assert torch.allclose(adapter(x), y, atol=1e-3)
            assert cls.incompatibility(src, FeatureSpec("map", (3, 3, 3)))  # says why it cannot join
    finally:
        for name in set(ADAPTERS.names()) - before:
            del ADAPTERS._items[name]
