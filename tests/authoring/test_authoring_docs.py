"""docs/writing-plugins.md is executed, top to bottom, as a reader would follow it.

In a fresh environment (see conftest.py) and an empty working folder:

- a code block with ``title="PATH"`` is written to PATH (relative to the current
  folder; ``$TRADER_HOME`` is expanded);
- a ``bash`` block runs in ``bash -e`` from the current folder; a ``cd`` in it
  carries over to the next blocks, as in a terminal. ``trader`` on PATH is the
  fresh interpreter's ``python -m trader`` and ``python`` is the fresh interpreter;
- a ``python`` block without a title runs as a script in the fresh interpreter;
- a ``toml`` block without a title must parse;
- a ``text`` block titled ``output`` lists lines that must each appear in the
  output of the blocks run since the previous output block.
"""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "writing-plugins.md"
FENCE = re.compile(r"^```(?P<lang>[a-z]*)(?P<attrs>[^\n]*)\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)


def code_blocks(text: str) -> list[tuple[str, str | None, str]]:
    found = []
    for match in FENCE.finditer(text):
        title = re.search(r'title="([^"]+)"', match["attrs"])
        found.append((match["lang"], title.group(1) if title else None, match["body"]))
    return found


def test_every_example_in_the_tutorial_runs(tmp_path, fresh_venv):
    blocks = code_blocks(DOC.read_text())
    assert sum(lang == "bash" for lang, _, _ in blocks) >= 5 and any(t and t.endswith(".py") for _, t, _ in blocks)

    shim = fresh_venv.root / "bin" / "trader"
    shim.write_text(f'#!/bin/sh\nexec "{fresh_venv.python}" -m trader "$@"\n')
    shim.chmod(0o755)
    env = fresh_venv.env(PATH=f"{fresh_venv.root / 'bin'}{os.pathsep}{os.environ['PATH']}")
    cwd = tmp_path / "work"
    cwd.mkdir()
    state = tmp_path / "cwd.txt"
    output = ""
    checked = 0

    for number, (lang, title, body) in enumerate(blocks, 1):
        where = f"{DOC.name} block {number} ({lang}{' ' + title if title else ''})"
        if title == "output":
            for line in filter(None, (line.strip() for line in body.splitlines())):
                assert line in output, f"{where}: {line!r} not in the output:\n{output}"
                checked += 1
            output = ""
        elif title:
            path = cwd / os.path.expandvars(title.replace("$TRADER_HOME", str(fresh_venv.home)))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)
        elif lang == "bash":
            proc = subprocess.run(["bash", "-e", "-c", f"{body}\npwd > {state}"], cwd=cwd, env=env,
                                  capture_output=True, text=True, timeout=240)
            assert proc.returncode == 0, f"{where} failed:\n{body}\n{proc.stdout}\n{proc.stderr}"
            output += proc.stdout
            cwd = Path(state.read_text().strip())
        elif lang == "python":
            script = tmp_path / f"block_{number}.py"
            script.write_text(body)
            proc = subprocess.run([str(fresh_venv.python), str(script)], cwd=cwd, env=env,
                                  capture_output=True, text=True, timeout=240)
            assert proc.returncode == 0, f"{where} failed:\n{proc.stdout}\n{proc.stderr}"
            output += proc.stdout
        elif lang == "toml":
            tomllib.loads(body)
    assert checked >= 10  # the outputs shown were really compared
