"""``kvruntime shell``: the CLI's commands typed into one open runtime.

Piped (a script on stdin): one command a line, no prompt, the exit code of
the last command as a POSIX shell gives; run in-process (click's runner),
and through the real script on real pipes where the process matters (the
home it holds, Ctrl-C). On a terminal (a pseudo-terminal here):
prompt_toolkit's prompt, with completion and a history file, through the
real script. Every subprocess is bounded by a timeout, so a shell that fails
to end at the end of its input fails its test instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import signal
import stat
from pathlib import Path

from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from kvruntime.cli._dumpformat import end_line, header_line, record_line
from kvruntime.cli.shell import completer

from .conftest import APP, fail, fill, kvr, read, script
from .shells import BOUND, interrupt_and_go_on, on_a_terminal, piped, read_until


def _shell(home: Path, text: str) -> tuple[int, str, str]:
    """``kvruntime shell`` fed ``text`` as its input (not a terminal), in-process:
    exit code, stdout, stderr."""
    done = kvr("shell", home=home, stdin=text.encode())
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def test_a_script_runs_in_order_and_a_failed_command_does_not_end_it(home: Path) -> None:
    fill(home, "notes", [(b"old", b"first-value")])
    code, out, err = _shell(
        home,
        f"set {APP} notes greeting 'hello shell'\n"
        f"get {APP} notes greeting --text\n"
        "\n"
        f"get {APP} missing-db greeting\n"
        "no-such-command\n"
        "get 'unbalanced\n"
        f"get {APP} notes old --text\n"
        "exit\n",
    )
    assert code == 0, err
    assert out.splitlines() == ["hello shell", "first-value"]
    assert "missing-db" in err
    assert "No such command 'no-such-command'" in err
    assert "No closing quotation" in err
    assert "Traceback" not in err
    assert "kvruntime>" not in out + err  # no prompt when the input is not a terminal
    assert read(home, "notes", [b"greeting"]) == {b"greeting": b"hello shell"}


def test_end_of_input_ends_it_with_the_last_commands_exit_code(home: Path) -> None:
    fill(home, "notes", [(b"k", b"v")])
    assert _shell(home, f"get {APP} notes k\n")[0] == 0
    code, _, err = _shell(home, f"get {APP} notes k\nget {APP} notes nope\n")
    assert code == 1, err
    assert "key nope not found" in err
    assert _shell(home, f"get {APP} notes nope\nexit 0\n")[0] == 0
    assert _shell(home, "exit 4\n")[0] == 4
    assert _shell(home, "")[0] == 0


def test_json_errors_and_help_work_as_outside(home: Path) -> None:
    fill(home, "notes", [(b"k", b"v")])
    code, out, err = _shell(home, f"get {APP} notes nope --json\nhelp\n")
    assert code == 0, err
    first, *rest = out.splitlines()
    assert json.loads(first)["error"]["exit_code"] == 1
    assert "Commands:" in "\n".join(rest)


def test_it_keeps_one_runtime_and_takes_its_grants_back_at_the_end(home: Path) -> None:
    fill(home, "notes", [(b"k", b"v")])
    with piped(home) as shell:
        assert shell.stdin is not None
        assert shell.stdout is not None
        shell.stdin.write(f"get {APP} notes k --text\n".encode())
        shell.stdin.flush()
        assert shell.stdout.readline() == b"v\n"  # the runtime is up
        fail(script("get", APP, "notes", "k", home=home), 3, "in use by another runtime")
        shell.stdin.close()
        assert shell.wait(timeout=BOUND) == 0
    caps = script("caps", "--json", home=home)
    assert caps.returncode == 0, caps.stderr.decode()
    assert b"kvruntime-cli" not in caps.stdout


def test_commands_that_need_the_home_or_stdin_are_refused_in_it(home: Path) -> None:
    fill(home, "notes", [(b"k", b"v")])
    code, out, err = _shell(
        home,
        f"serve\nrepair {APP} notes\nload {APP} notes\nshell\n"
        f"get {APP} notes k --home {home.parent / 'other'}\n"
        f"set {APP} notes k --value-file -\n"
        f"get {APP} notes k --text\n",
    )
    assert code == 0, err
    for command in ("serve", "repair", "load", "shell"):
        assert f"Error: {command} does not run in the shell" in err
    assert "the shell runs on home" in err
    assert "stdin is the shell's own input" in err
    assert out == "v\n"  # the script's last line was not read as the value


def test_on_a_terminal_it_prompts_completes_and_keeps_history(home: Path) -> None:
    fill(home, "notes", [(b"k", b"from-the-terminal")])
    with on_a_terminal(home) as (shell, controller, seen):
        read_until(controller, b"kvruntime>", seen)
        os.write(controller, b"sc")
        read_until(controller, b"sc", seen, after=seen.index(b"kvruntime>"))
        typed = len(seen)
        os.write(controller, b"\t")  # Tab completes "sc" to "scan": the terminal shows "an"
        read_until(controller, b"an", seen, after=typed)
        os.write(controller, f" {APP} no".encode())
        read_until(controller, f"{APP} no".encode(), seen, after=typed)  # its echo first
        typed = len(seen)
        os.write(controller, b"\t")  # the db: "no" completes to "notes" (the home's only)
        # the terminal shows "tes": waited for past the echo of what was typed, whose
        # package name ("cli-test") holds "tes" too
        read_until(controller, b"tes", seen, after=typed)
        os.write(controller, b" --text\r")
        read_until(controller, b"from-the-terminal", seen)
        read_until(controller, b"kvruntime>", seen, after=seen.index(b"from-the-terminal"))
        os.write(controller, b"\x04")  # Ctrl-D on an empty line
        assert shell.wait(timeout=BOUND) == 0, bytes(seen[-600:])
    history = home / "shell-history"
    assert f"scan {APP} notes --text" in history.read_text()
    assert stat.S_IMODE(history.stat().st_mode) == 0o600  # what was typed is the owner's
    assert b"Traceback" not in seen


def _big_db(home: Path, db: str, entries: int) -> None:
    """``db`` of APP with ``entries`` keys ``key-00000000``..., loaded in-process."""
    dump = header_line(APP, db) + b"".join(
        record_line(b"key-%08d" % i, b"v") for i in range(entries)
    )
    loaded = kvr("load", APP, db, "--create", home=home, stdin=dump + end_line(entries))
    assert loaded.returncode == 0, loaded.stderr.decode()


def test_ctrl_c_stops_the_running_command_and_the_prompt_comes_back(home: Path) -> None:
    fill(home, "notes", [(b"k", b"still-here")])
    _big_db(home, "big", 200_000)
    with on_a_terminal(home) as (shell, controller, seen):
        read_until(controller, b"kvruntime>", seen)
        os.write(controller, f"scan {APP} big --keys-only\r".encode())
        read_until(controller, b"key-00001000", seen)  # the scan is under way
        interrupt_and_go_on(shell, controller, seen)
    assert b"key-00199999" not in seen  # the scan did not run to its end
    assert b"Traceback" not in seen


def test_ctrl_c_ends_a_piped_script_with_130(home: Path) -> None:
    _big_db(home, "big", 200_000)
    with piped(home) as shell:
        assert shell.stdin is not None
        assert shell.stdout is not None
        assert shell.stderr is not None
        shell.stdin.write(f"scan {APP} big --keys-only --text\nget {APP} big x\n".encode())
        shell.stdin.flush()
        assert shell.stdout.readline() == b"key-00000000\n"  # the scan is under way
        shell.send_signal(signal.SIGINT)
        shell.stdout.read()  # to its end: the shell is gone
        assert shell.wait(timeout=BOUND) == 130
        err = shell.stderr.read().decode()
    assert "Error: interrupted" in err
    assert "key x not found" not in err  # the script's next line did not run
    assert "Traceback" not in err


def _completions(text: str) -> set[str]:
    dbs = [(APP, "notes"), (APP, "numbers"), ("other:x.os", "notes")]
    found = completer(lambda: dbs).get_completions(Document(text), CompleteEvent())
    return {c.text for c in found}


def test_command_names_options_packages_and_dbs_complete() -> None:
    assert _completions("sc") == {"scan"}
    every = _completions("")
    assert {"get", "set", "del", "scan", "incr", "exit", "help"} <= every
    assert not every & {"serve", "run", "shell", "repair", "load"}
    assert _completions("scan x --rev") == {"--reverse"}
    assert _completions("get ") == {APP, "other:x.os"}
    assert _completions("get ot") == {"other:x.os"}
    assert _completions(f"get {APP} ") == {"notes", "numbers"}
    assert _completions(f"get {APP} no") == {"notes"}
    assert _completions(f"get {APP} notes ") == set()  # KEY: nothing to offer
    assert _completions("ls ") == set()  # ls takes no PACKAGE DB
