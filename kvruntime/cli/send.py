"""``send``: one KvRequest, as Hyperware's ``m our@kv:distro:sys '{...}'``.

The request is written in the "meaning" JSON of ``protocol/golden.py`` (the
default), or given as the body itself in one of the forms kv serves
(``--form json``: process_lib's serde_json; ``--form msgpack``: the body's
bytes in hex, byte fields ``bin`` or arrays of ints). A body given as is goes
out byte for byte, and its answer is shown in the form it came back in.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import click

from ._app import EXIT_KV, EXIT_USAGE, CliError, cli, home_option, set_json_mode, verbose_option
from ._render import Format, bytes_json, parse_bytes, render, resolve
from ._session import TIMEOUT, as_admin, run_in_home

if TYPE_CHECKING:
    from protocol.forms import Form
    from protocol.ids import ProcessId
    from protocol.messages import KvRequest

    from ..kernel.process import ProcessContext

__all__ = ["send"]


@cli.command()
@click.argument("request_json", metavar="'REQUEST'")
@click.option(
    "--form",
    "body_form",
    type=click.Choice(["meaning", "json", "msgpack"]),
    default="meaning",
    show_default=True,
    help="How REQUEST is written: kvruntime's readable JSON; the body itself as "
    "Hyperware's JSON; or the body's msgpack bytes as hex. A body is sent as is "
    "and its answer shown in its own form.",
)
@click.option("--blob", help="The request's blob as text (a Set needs one).")
@click.option("--blob-hex", help="The request's blob as hex.")
@click.option("--blob-file", type=click.File("rb"), help="Read the blob from a file ('-': stdin).")
@click.option(
    "--as",
    "as_process",
    metavar="PROCESS",
    help="Send as this process (name:package:publisher) instead of kvruntime-cli:PACKAGE.",
)
@click.option("--raw", "fmt", flag_value=Format.RAW, help="Write a response blob's bytes as is.")
@click.option("--hex", "fmt", flag_value=Format.HEX, help="Show a response blob as hex.")
@click.option(
    "--json",
    "fmt",
    flag_value=Format.JSON,
    callback=set_json_mode,
    help='Print {"response": ..., "blob": ...}; errors as JSON too.',
)
@click.option("--text", "fmt", flag_value=Format.TEXT, help="Readable (default on a terminal).")
@home_option
@verbose_option
def send(
    request_json: str,
    body_form: str,
    blob: str | None,
    blob_hex: str | None,
    blob_file: BinaryIO | None,
    as_process: str | None,
    fmt: Format | None,
    home: Path,
) -> None:
    """Send a KvRequest written as JSON to kv:distro:sys; print the response.

    The JSON is the "meaning" format of protocol/golden.py: PackageId as
    "name:publisher", bytes as hex or {"utf8": "text"}; tx_id may be left
    out of Set and Delete. The response is printed as JSON on one line,
    then any blob. Exits 1 when the response is an Err. 'REQUEST' - reads it
    from stdin. The process the request is sent as keeps what the
    request grants it (an Open's read and write), not the right to message
    kv:distro:sys that the command lent it.

    \b
    Example:
      kvruntime send '{"package_id": "my-app:publisher.os", "db": "notes", "action": "Open"}'
      kvruntime send '{"package_id": "my-app:publisher.os", "db": "notes",
                       "action": {"Set": {"key": {"utf8": "hello"}}}}' --blob world
      kvruntime send '{"package_id": "my-app:publisher.os", "db": "notes",
                       "action": {"Get": "68656c6c6f"}}'
      kvruntime send --form json '{"package_id": {"package_name": "my-app",
          "publisher_node": "publisher.os"}, "db": "notes", "action": {"Get": [104, 105]}}'
    """
    from protocol.codec import DecodeError, decode_response, encode_request
    from protocol.forms import Form, is_err_answer
    from protocol.golden import response_to_meaning
    from protocol.ids import KV_PROCESS_ID, Address, IdError, ProcessId
    from protocol.messages import ErrResponse, Open

    from ._meaning import request_from_json

    fmt = resolve(fmt)
    if request_json == "-":
        if blob_file is not None and blob_file.name == "<stdin>":
            raise click.UsageError("stdin cannot give both the JSON and --blob-file -")
        request_json = sys.stdin.read()
    if body_form == "meaning":
        request = request_from_json(request_json)
        wire, form = encode_request(request), Form.CANONICAL
    else:
        wire, request, form = _body_as_given(request_json, body_form)
    given = [b for b in (blob, blob_hex, blob_file) if b is not None]
    if len(given) > 1:
        raise click.UsageError("give at most one of --blob, --blob-hex, --blob-file")
    payload: bytes | None = None
    if blob is not None:
        payload = parse_bytes(blob, is_hex=False, what="--blob")
    elif blob_hex is not None:
        payload = parse_bytes(blob_hex, is_hex=True, what="--blob-hex")
    elif blob_file is not None:
        payload = blob_file.read()
    process: ProcessId | None = None
    if as_process is not None:
        try:
            process = ProcessId.parse(as_process)
        except IdError as exc:
            raise CliError(f"bad process id {as_process!r}: {exc}", EXIT_USAGE) from None

    async def body(ctx: ProcessContext) -> tuple[bytes, bytes | None]:
        target = Address(node=ctx.our.node, process=KV_PROCESS_ID)
        message = await ctx.send_and_await_response(target, wire, blob=payload, timeout=TIMEOUT)
        return message.body, message.blob

    answer, answer_blob = run_in_home(
        home,
        lambda s: as_admin(s, request.package_id, body, process=process),
        create_home=isinstance(request.action, Open),  # only Open may create
        keep_db_grants=True,  # what the request earned (invariant 3 of _session)
    )
    blob_doc = None if answer_blob is None else bytes_json(answer_blob)
    if body_form == "meaning":
        try:
            response = decode_response(answer)
        except DecodeError as exc:
            raise CliError(f"kv:distro:sys answered a body that does not decode: {exc}") from None
        failed = isinstance(response, ErrResponse)
        shown = json.dumps(response_to_meaning(response), ensure_ascii=False)
        doc: dict[str, object] = {"response": response_to_meaning(response), "blob": blob_doc}
    else:
        failed = is_err_answer(answer)
        shown = answer.decode() if form is Form.JSON else answer.hex()
        body_doc = json.loads(answer) if form is Form.JSON else answer.hex()
        doc = {"form": form.value, "body": body_doc, "blob": blob_doc}
    if fmt is Format.JSON:
        click.echo(json.dumps(doc, ensure_ascii=False))
    else:
        click.echo(shown)
        if answer_blob is not None:
            if fmt is Format.RAW:
                sys.stdout.flush()
                sys.stdout.buffer.write(answer_blob)
                sys.stdout.buffer.flush()
            else:
                click.echo(render(answer_blob, fmt))
    if failed:
        sys.exit(EXIT_KV)


def _body_as_given(text: str, body_form: str) -> tuple[bytes, KvRequest, Form]:
    """The body REQUEST gives in ``body_form`` ("json" or "msgpack"), what it
    asks and the form it is in (which its answer takes)."""
    from protocol.codec import DecodeError
    from protocol.forms import Form, decode_request_in_any_form, form_of

    if body_form == "json":
        wire = text.encode()
    else:
        try:
            wire = bytes.fromhex(text)
        except ValueError:
            raise CliError(
                "--form msgpack takes the body's bytes as hex: not hex", EXIT_USAGE
            ) from None
        if form_of(wire) is Form.JSON:
            raise CliError("these bytes are a JSON body: use --form json", EXIT_USAGE)
    try:
        request, form = decode_request_in_any_form(wire)
    except DecodeError as exc:
        raise CliError(f"not a KvRequest in the {body_form} form: {exc}", EXIT_USAGE) from None
    return wire, request, form
