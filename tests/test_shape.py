"""The code's shape, enforced: only seqtui/tui imports textual, so the core, the CLI and the demo stay
importable (and fast to start) without it."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import seqtui


def test_nothing_outside_seqtui_tui_loads_textual():
    modules = [m.name for m in pkgutil.walk_packages(seqtui.__path__, "seqtui.")
               if not m.name.startswith("seqtui.tui") and m.name != "seqtui.__main__"]
    assert "seqtui.cli" in modules and "seqtui.demo" in modules
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print(sorted({k.split('.')[0] for k in sys.modules if k.split('.')[0] in ('textual', 'rich')}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "textual" not in out, out
