"""Names a build refers to, checked before anything heavy is imported: built-in profiles and targets (package data),
registered model names, and a reader of the built-in YAML files' plain fields for the listing verbs.

Standard library only (no pydantic, no PyYAML, no torch), so ``profiles`` / ``targets`` work in the runtime-only
install and a misspelt ``--profile``, ``--target`` or model name is refused in well under a second.
"""

from __future__ import annotations

import difflib
import re
from importlib import resources
from pathlib import Path
from typing import Literal

from restnet_compile.errors import BadInputError

Kind = Literal["profiles", "targets"]

#: The demo zoo (weights ship with the package).
DEMO_MODELS = ("demo-large-cnn", "demo-mid-cnn", "demo-small-cnn", "demo-vit", "demo-hybrid-vit")
#: torchvision architectures registered by name.
TORCHVISION_ARCHS = (
    "resnet18",
    "resnet50",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "vit_b_16",
    "swin_t",
)


def builtin_dir(kind: Kind) -> Path:
    """The folder of the built-in profiles or targets inside the installed package."""
    return Path(str(resources.files("restnet_compile").joinpath(f"builtin/{kind}")))


def builtin_names(kind: Kind) -> list[str]:
    """Names of the built-in profiles or targets."""
    return sorted(p.stem for p in builtin_dir(kind).glob("*.yaml"))


def resolve(kind: Kind, name_or_path: str | Path) -> Path:
    """The YAML file of a built-in name or a user's path.

    Raises:
        BadInputError: an unknown name (the message lists the built-ins) or a missing file.
    """
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        path = Path(text)
        if not path.is_file():
            raise BadInputError(f"{kind[:-1]} file {text} does not exist")
        return path
    path = builtin_dir(kind) / f"{text}.yaml"
    if not path.is_file():
        raise BadInputError(f"unknown {kind[:-1]} {text!r}; valid choices: {', '.join(builtin_names(kind))}")
    return path


#: Every classification architecture of the pinned torchvision (``torchvision.models.list_models``), so a bare name
#: is checked before torchvision is imported; a unit test holds it equal to the installed torchvision's list.
TORCHVISION_CLASSIFIERS = (
    "alexnet",
    "convnext_base",
    "convnext_large",
    "convnext_small",
    "convnext_tiny",
    "densenet121",
    "densenet161",
    "densenet169",
    "densenet201",
    "efficientnet_b0",
    "efficientnet_b1",
    "efficientnet_b2",
    "efficientnet_b3",
    "efficientnet_b4",
    "efficientnet_b5",
    "efficientnet_b6",
    "efficientnet_b7",
    "efficientnet_v2_l",
    "efficientnet_v2_m",
    "efficientnet_v2_s",
    "googlenet",
    "inception_v3",
    "maxvit_t",
    "mnasnet0_5",
    "mnasnet0_75",
    "mnasnet1_0",
    "mnasnet1_3",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "mobilenet_v3_small",
    "regnet_x_16gf",
    "regnet_x_1_6gf",
    "regnet_x_32gf",
    "regnet_x_3_2gf",
    "regnet_x_400mf",
    "regnet_x_800mf",
    "regnet_x_8gf",
    "regnet_y_128gf",
    "regnet_y_16gf",
    "regnet_y_1_6gf",
    "regnet_y_32gf",
    "regnet_y_3_2gf",
    "regnet_y_400mf",
    "regnet_y_800mf",
    "regnet_y_8gf",
    "resnet101",
    "resnet152",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "resnext50_32x4d",
    "shufflenet_v2_x0_5",
    "shufflenet_v2_x1_0",
    "shufflenet_v2_x1_5",
    "shufflenet_v2_x2_0",
    "squeezenet1_0",
    "squeezenet1_1",
    "swin_b",
    "swin_s",
    "swin_t",
    "swin_v2_b",
    "swin_v2_s",
    "swin_v2_t",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
    "vit_b_16",
    "vit_b_32",
    "vit_h_14",
    "vit_l_16",
    "vit_l_32",
    "wide_resnet101_2",
    "wide_resnet50_2",
)


def check_model_name(name: str) -> None:
    """Refuse a model name that is neither a demo model, a torchvision classification architecture, a
    ``torchvision:NAME`` / ``timm:NAME`` spec nor a user's ``file.py:Class`` spec (specs are checked when the model
    is created).

    Raises:
        BadInputError: the message lists the demo models, the other forms and close matches.
    """
    known = DEMO_MODELS + TORCHVISION_CLASSIFIERS
    if ":" in name or name in known:
        return
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
    hint = f"; close matches: {', '.join(close)}" if close else ""
    raise BadInputError(
        f"unknown model {name!r}; valid choices: {', '.join(sorted(DEMO_MODELS))}, a torchvision classification "
        f"model (NAME or torchvision:NAME), timm:NAME or path/file.py:Class{hint}"
    )


def check_names(profiles: list[str], target: str | None, models: tuple[str, ...]) -> None:
    """Every profile, the target and every model name exist (the first bad one is refused)."""
    for name in profiles:
        resolve("profiles", name)
    if target is not None:
        resolve("targets", target)
    for model in models:
        check_model_name(model)


_KEY = re.compile(r"^( *)([A-Za-z_][A-Za-z0-9_]*):(?:\s+(.*))?$")


def read_plain_fields(path: Path) -> dict[str, object]:
    """The fields of a built-in profile or target as text: ``{"name": "phone", "latency": {"budget": "5ms"}}``.

    Reads the plain subset of YAML the built-in files use (mappings by indentation, scalars, ``[a, b]`` lists that may
    span lines, ``>-`` folded text, ``#`` comments): enough to list them without PyYAML. Values stay strings (lists of
    strings); validation is the compiler's (:mod:`restnet_compile.config.device`).
    """
    out: dict[str, object] = {}
    parents: list[tuple[int, dict[str, object]]] = [(-1, out)]
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = _KEY.match(_uncomment(lines[i]))
        i += 1
        if m is None:
            continue
        indent, key, value = len(m.group(1)), m.group(2), (m.group(3) or "").strip()
        while parents[-1][0] >= indent:
            parents.pop()
        here = parents[-1][1]
        if not value:
            child: dict[str, object] = {}
            here[key] = child
            parents.append((indent, child))
        elif value in (">", ">-", "|", "|-"):
            block: list[str] = []
            while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                block.append(lines[i].strip())
                i += 1
            here[key] = (" " if value.startswith(">") else "\n").join(b for b in block if b)
        elif value.startswith("["):
            while "]" not in value and i < len(lines):
                value += " " + _uncomment(lines[i]).strip()
                i += 1
            here[key] = [v.strip() for v in value.strip("[] ").split(",") if v.strip()]
        else:
            here[key] = value.strip("'\"")
    return out


def _uncomment(line: str) -> str:
    """``line`` without a trailing ``# comment`` (a ``#`` after a space or at the start)."""
    cut = re.search(r"(^|\s)#", line)
    return line[: cut.start()].rstrip() if cut else line.rstrip()
