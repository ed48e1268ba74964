"""Flash and RAM of a linked firmware, from its linker map: every input section counted once, by where it came from.

``model`` is the bundle's segment arrays and tables (model_data.o), ``reference`` the test inputs the generated main
runs (a product firmware leaves them out), ``runtime`` the generated runtime, main and start-up, ``tflm`` the
TensorFlow Lite Micro library, ``libc`` the C/C++ libraries. Flash is every allocated section that is not
zero-initialised (code, read-only data, and the initial values of .data); RAM is .data + .bss (the tensor arena and
boundary buffer are static, so inside .bss) and, on Cortex-M, the stack the linker script reserves.
"""

from __future__ import annotations

import re
from pathlib import Path

_OUTPUT = re.compile(r"^(\.[\w.]+)(?:\s+0x[0-9a-f]+\s+0x[0-9a-f]+.*)?\s*$")
_INPUT = re.compile(r"^ (\S+)?\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$")
_RAM_ONLY = (".bss", ".tbss", ".heap", ".stack", ".noinit")
_NOT_LOADED = (".comment", ".debug", ".ARM.attributes", ".note", ".stab", ".gnu_debug", ".symtab", ".strtab")


def _owner(source: str) -> str:
    name = source.strip()
    if "libtensorflow-microlite.a" in name:
        return "tflm"
    if name.endswith("model_data.o"):
        return "model"
    if name.endswith("reference_data.o"):
        return "reference"
    if name.endswith(("main.o", "restnet_runtime.o", "startup_cortex_m.o")):
        return "runtime"
    return "libc"


def map_sizes(map_file: Path) -> tuple[dict[str, int], dict[str, int]]:
    """(flash by owner, RAM by output section) from a GNU ld map file."""
    flash = {k: 0 for k in ("model", "reference", "runtime", "tflm", "libc")}
    ram: dict[str, int] = {}
    text = map_file.read_text(errors="replace")
    start = text.find("Linker script and memory map")
    lines = text[start:].splitlines() if start >= 0 else []
    section, pending = "", ""
    for raw in lines:
        line = pending + raw if pending else raw
        pending = ""
        out = _OUTPUT.match(line)
        if out and not line.startswith(" "):
            section = out.group(1)
            continue
        m = _INPUT.match(line)
        if m is None:
            if re.match(r"^ \S+\s*$", line) and not line.strip().startswith("*"):
                pending = line.rstrip()  # a long section name: address, size and file follow on the next line
            continue
        size = int(m.group(3), 16)
        if size == 0 or section.startswith(_NOT_LOADED) or not section:
            continue
        if section.startswith((".data", ".tdata")) or section.startswith(_RAM_ONLY):
            key = ".bss" if section.startswith(_RAM_ONLY) else ".data"
            ram[key] = ram.get(key, 0) + size
            if key == ".bss":
                continue
        flash[_owner(m.group(4))] += size
    return flash, ram
