"""The README's tour stays true: every command and option it shows exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from trader.cli.main import cli

README = Path(__file__).resolve().parents[2] / "README.md"


def tour_commands() -> list[str]:
    text = README.read_text()
    tour = text[text.index("## A tour"):]
    block = re.search(r"```bash\n(.*?)```", tour, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.startswith("trader ")]


def test_the_tour_has_commands():
    assert len(tour_commands()) >= 15


@pytest.mark.parametrize("line", tour_commands())
def test_tour_command_parses(line):
    args = shlex.split(line)[1:]
    # --help is eager: click still rejects unknown commands and options before printing help.
    result = CliRunner().invoke(cli, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_quickstart_commands_are_make_targets():
    makefile = (README.parent / "Makefile").read_text()
    assert "make demo" in README.read_text() and "make test" in README.read_text()
    assert re.search(r"^demo: install$", makefile, re.M) and re.search(r"^test: install$", makefile, re.M)
    assert "make test" in (README.parent / ".ci" / "run").read_text()
