"""run and bench find their programs in the current directory; --help and -v everywhere.

run and bench go through the real script: what they find depends on the
current directory and the import path of the process, and the test
process's own import path already holds this checkout.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click
import pytest

from kvruntime.cli import cli
from kvruntime.cli._app import COMMAND_MODULES

from .conftest import COMMANDS, fail, kvr, ok, script

#: The kvruntime checkout (where examples/host.py is).
CHECKOUT = Path(__file__).resolve().parents[3]


def test_run_and_bench_outside_a_checkout_say_what_is_missing(tmp_path: Path) -> None:
    fail(script("run", home=tmp_path / "h", cwd=tmp_path), 1, "no demo host in")
    fail(script("bench", home=None, cwd=tmp_path), 1, "no benchmarks in")


def test_run_starts_examples_host_with_the_home(tmp_path: Path) -> None:
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "__init__.py").write_text("")
    (tmp_path / "examples" / "host.py").write_text(
        "import sys\nif __name__ == '__main__':\n    print('host', sys.argv[1:])\n"
    )
    out = ok(script("run", "--home", str(tmp_path / "h"), home=None, cwd=tmp_path))
    assert out == f"host ['--home', '{tmp_path / 'h'}']\n"
    out = ok(script("run", "-v", "--home", str(tmp_path / "h"), home=None, cwd=tmp_path))
    assert out == f"host ['--home', '{tmp_path / 'h'}']\n"  # -v is info: ours, not the host's
    out = ok(script("run", "-vv", "--home", str(tmp_path / "h"), home=None, cwd=tmp_path))
    assert out == f"host ['--home', '{tmp_path / 'h'}', '-v']\n"  # the host's -v is debug


def test_run_v_shows_the_real_demo_hosts_log(tmp_path: Path) -> None:
    quiet = script("run", "--home", str(tmp_path / "quiet"), home=None, cwd=CHECKOUT)
    assert "examples ran and the runtime stopped" in ok(quiet)
    assert quiet.stderr == b""
    info = script("run", "-v", "--home", str(tmp_path / "info"), home=None, cwd=CHECKOUT)
    assert "examples ran and the runtime stopped" in ok(info)
    assert "DEBUG" not in info.stderr.decode()  # -v means info
    loud = script("run", "-vv", "--home", str(tmp_path / "loud"), home=None, cwd=CHECKOUT)
    assert "examples ran and the runtime stopped" in ok(loud)  # the same run, its log on stderr
    err = loud.stderr.decode()
    assert "kvruntime.kv DEBUG: malformed request" in err  # the raw_wire example's bad request
    assert "Traceback" not in err


def test_bench_runs_python_m_benchmarks_with_its_arguments(tmp_path: Path) -> None:
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "__main__.py").write_text(
        "import sys\nprint('bench', sys.argv[1:])\nsys.exit(7)\n"
    )
    result = script("bench", "--quick", "-n", "3", home=None, cwd=tmp_path)
    assert result.returncode == 7
    # a quick run never writes over the committed full run in benchmarks/results
    assert result.stdout.decode() == "bench ['--quick', '-n', '3', '--out', '.bench-quick']\n"
    result = script("bench", "--quick", "--out", "x", home=None, cwd=tmp_path)
    assert result.stdout.decode() == "bench ['--quick', '--out', 'x']\n"
    result = script("bench", "-n", "3", home=None, cwd=tmp_path)
    assert result.stdout.decode() == "bench ['-n', '3']\n"


def test_the_list_of_commands_is_complete_and_each_loads_from_its_module() -> None:
    ctx = click.Context(cli)
    assert cli.list_commands(ctx) == sorted(COMMANDS)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None, name
        assert command.callback is not None
        assert command.callback.__module__ == f"kvruntime.cli.{COMMAND_MODULES[name]}"
    assert sorted(cli.commands) == sorted(COMMANDS)  # no module defines a command not listed


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command: str) -> None:
    out = ok(kvr(command, "--help", home=None))
    assert "Example:" in out
    assert "kvruntime " + command in out


def test_verbose_logs_to_stderr(home: Path) -> None:
    root = logging.getLogger()
    before = (root.level, list(root.handlers))
    result = kvr("send", '{"package_id": "a:b.os", "db": "d", "action": "Open"}', "-vv", home=home)
    assert result.returncode == 0
    assert "DEBUG" in result.stderr.decode()
    assert (root.level, root.handlers) == before  # the in-process run left no logging behind
