"""``shell``: the CLI's commands typed into one runtime that stays open.

Each line is split as a POSIX shell would (``shlex``) and run as
``kvruntime --home HOME LINE`` by the same click group, in a worker thread,
whose ``run_in_home`` finds the shell's runtime (``_session`` invariant 6)
instead of starting one: no start-up per command, and the home stays in use
by the shell until it ends.

Lines come from one of two sources, chosen once:
- on a terminal (stdin and stdout both): prompt_toolkit's prompt, with
  history in ``HOME/shell-history`` (mode 0600: it holds what was typed)
  and completion of command names, of the options of the command being
  typed, and of package ids and db names;
- otherwise (a script on a pipe): plain lines read in a worker thread (a
  blocking read never runs on the event loop), no prompt, no history.

Invariants:
1. A command's failure (kv's error, a usage mistake, an unknown command) is
   printed as outside the shell and the next line is read; only ``exit
   [CODE]`` or the end of input (Ctrl-D) ends the shell. Its exit code is
   CODE, else that of the last command run (0 if none), as ``sh`` gives.
2. Commands that need the home or stdin to themselves, or host a program
   (``NOT_IN_SHELL``), are refused at the prompt. A command that reads stdin
   anyway (``--value-file -``, ``send -``) is refused when it tries: the
   shell's stdin is its commands.
3. The grants the commands' processes took are taken back when the shell
   ends (``_session`` invariant 3, once for the whole shell).
4. Ctrl-C while a command runs stops that command (its process is killed,
   exit 130) and, on a terminal, the prompt comes back; a script (a pipe)
   ends there with 130. Ctrl-C at the prompt clears the line.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Final, TextIO

import click

from ._app import (
    COMMAND_MODULES,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    CliError,
    cli,
    home_option,
    verbose_option,
)
from ._session import OPEN_HOME, OpenHome, Session, on_interrupt, run_in_home

if TYPE_CHECKING:
    from prompt_toolkit.completion import CompleteEvent, Completer, Completion
    from prompt_toolkit.document import Document

__all__ = ["HISTORY_FILE", "NOT_IN_SHELL", "PROMPT", "completer", "shell"]

#: The history file of the terminal prompt, under the home.
HISTORY_FILE: Final = "shell-history"
#: Commands the prompt refuses (invariant 2).
NOT_IN_SHELL: Final = frozenset({"run", "serve", "bench", "repair", "shell", "load"})
#: The words the shell itself understands.
BUILTINS: Final = ("exit", "quit", "help")
PROMPT: Final = "kvruntime> "

#: Reads one line: the next command, or None at the end of input.
LineSource = Callable[[], Awaitable[str | None]]


@cli.command()
@click.option("--create", is_flag=True, help="Create the home if it does not exist.")
@home_option
@verbose_option
def shell(create: bool, home: Path) -> None:
    """Run commands typed at a prompt in one runtime on the home.

    Type a command as you would after `kvruntime` (get, set, del, scan,
    incr, ls, caps...). On a terminal, Tab completes command names,
    options, package ids and db names, history is kept in
    HOME/shell-history, and Ctrl-C stops the command running; from a pipe,
    one command a line and no prompt. `exit [CODE]`, `quit` or Ctrl-D
    leave; the exit code is CODE, else the last command's.

    \b
    Example:
      kvruntime shell --home ./data
      kvruntime> set my-app:publisher.os notes hello world
      kvruntime> get my-app:publisher.os notes hello
      printf 'get my-app:publisher.os notes hello\\n' | kvruntime shell
    """

    async def work(session: Session) -> int:
        host = OpenHome(home=home, session=session)
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
        lines = _prompt_lines(host) if interactive else _piped_lines(sys.stdin)
        return await _loop(host, lines, interactive=interactive)

    code = run_in_home(home, work, create_home=create)
    if code:
        raise click.exceptions.Exit(code)


async def _loop(host: OpenHome, lines: LineSource, *, interactive: bool) -> int:
    import shlex

    code = 0
    while (line := await lines()) is not None:
        try:
            args = shlex.split(line)
        except ValueError as exc:
            code = _refuse(f"{exc}: {line.strip()}")
            continue
        if not args:
            continue
        match args:
            case ["exit" | "quit"]:
                return code
            case ["exit" | "quit", number] if number.isdigit():
                return int(number) % 256
            case ["exit" | "quit", *_]:
                code = _refuse("usage: exit [CODE]")
            case [name, *_] if name in NOT_IN_SHELL:
                code = _refuse(f"{name} does not run in the shell (run it outside)")
            case ["help", *rest]:
                code = await _command(host, [*rest, "--help"])
            case _:
                code = await _command(host, args)
                if code == EXIT_INTERRUPTED and not interactive:
                    return code  # Ctrl-C stops a script, as it stops sh's
    return code


async def _command(host: OpenHome, args: list[str]) -> int:
    """Run one command in a worker thread; Ctrl-C meanwhile stops it (invariant 4)."""
    import anyio.to_thread

    with on_interrupt(host.interrupt):
        return await anyio.to_thread.run_sync(_run_command, host, args)


def _refuse(message: str) -> int:
    click.echo(f"Error: {message}", err=True)
    return EXIT_USAGE


def _run_command(host: OpenHome, args: list[str]) -> int:
    """``kvruntime --home HOME ARGS`` in this worker thread, on the shell's runtime: its code."""
    token = OPEN_HOME.set(host)
    stdin, sys.stdin = sys.stdin, _NO_STDIN
    try:
        code = cli.main(
            args=["--home", str(host.home), *args], prog_name="kvruntime", standalone_mode=False
        )
    except click.ClickException as exc:  # CliError and usage errors: as outside (invariant 1)
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("Aborted!", err=True)
        return 1
    finally:
        sys.stdin = stdin
        OPEN_HOME.reset(token)
    return code if isinstance(code, int) else 0


class _ShellsStdin(io.RawIOBase):
    """The stdin a command sees in the shell: reading it is refused (invariant 2)."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: object) -> int:
        raise CliError("stdin is the shell's own input: give the value in a file", EXIT_USAGE)


_NO_STDIN = io.TextIOWrapper(io.BufferedReader(_ShellsStdin()))


def _piped_lines(source: TextIO) -> LineSource:
    """Lines of ``source`` (a script on a pipe), each read in a worker thread."""
    import anyio.to_thread

    readline = source.readline

    async def next_line() -> str | None:
        line: str = await anyio.to_thread.run_sync(readline, abandon_on_cancel=True)
        return line or None  # "" only at the end of input

    return next_line


def _prompt_lines(host: OpenHome) -> LineSource:
    """Lines typed at prompt_toolkit's prompt on the terminal, with history and completion."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory

    rt = host.session.rt  # completion runs on the event loop's thread: the runtime's own

    def dbs() -> list[tuple[str, str]]:
        return [(str(package), db) for package, db in rt.list_dbs()]

    history = host.home / HISTORY_FILE
    if not history.exists():  # values typed at the prompt land in it: the owner's only
        os.close(os.open(history, os.O_WRONLY | os.O_CREAT, 0o600))
    prompt: PromptSession[str] = PromptSession(
        history=FileHistory(str(history)),
        completer=completer(dbs),
        complete_while_typing=False,
    )

    async def next_line() -> str | None:
        while True:
            try:
                return await prompt.prompt_async(PROMPT)
            except KeyboardInterrupt:  # Ctrl-C at the prompt clears the line
                continue
            except EOFError:  # Ctrl-D on an empty line
                return None

    return next_line


#: The home's dbs, as (package id, db name): what PACKAGE and DB complete to.
DbLister = Callable[[], Iterable[tuple[str, str]]]


def completer(dbs: DbLister = tuple) -> Completer:
    """Completion of the word being typed: a command name (the first word), an option of
    that command (a word starting with ``-``), or, for a command taking PACKAGE DB, a
    package id (the second word) or a db of that package (the third), from ``dbs``."""
    from prompt_toolkit.completion import Completer, Completion

    names = sorted(set(COMMAND_MODULES) - NOT_IN_SHELL) + list(BUILTINS)
    context = click.Context(cli)

    def candidates(words: list[str], typing: str) -> Iterable[str]:
        if len(words) == 1:
            return names
        command = cli.get_command(context, words[0])
        if command is None:
            return ()
        if typing.startswith("-"):
            return _options(command)
        arguments = [p.name for p in command.params if isinstance(p, click.Argument)]
        if arguments[:2] != ["package", "db"] or len(words) > 3:
            return ()
        if len(words) == 2:
            return sorted({package for package, _ in dbs()})
        return sorted(db for package, db in dbs() if package == words[1])

    class _Words(Completer):
        def get_completions(
            self, document: Document, complete_event: CompleteEvent
        ) -> Iterable[Completion]:
            before = document.text_before_cursor
            words = before.split()
            typing = "" if before[-1:].isspace() or not words else words[-1]
            if typing == "":
                words.append("")  # the next word, not begun yet
            for word in candidates(words, typing):
                if word.startswith(typing):
                    yield Completion(word, start_position=-len(typing))

    return _Words()


def _options(command: click.Command) -> list[str]:
    found = {"--help"}
    for param in command.params:
        if isinstance(param, click.Option):
            found.update(param.opts)
    return sorted(found)
