"""Run the Rust conformance client (conformance/hyperware-kv) against a live runtime.

The client declares Hyperware's kv types as process_lib declares them and
cannot join the in-process bus, so a harness process spawned in a real
``Runtime`` runs it as a subprocess and relays: each request the client
writes on its stdout goes to ``kv:distro:sys`` with
``ctx.send_and_await_response`` and the answer goes back on its stdin.

Frames (the client's ``src/bridge.rs`` states the same)::

    frame = kind:u8  length:u32be  payload[length]
    field = 0x00 | 0x01 length:u32be bytes        (absent | present)

    Q  client -> harness  field(body) field(blob)            a request
    P  client -> harness  UTF-8 JSON object                  a report line
    A  harness -> client  field(body) field(blob) field(metadata)  the answer
    X  harness -> client  UTF-8 text                         no answer (SendError)

Run alone, it prints how each form fares on a fresh runtime::

    .venv/bin/python -m tests.conformance.rust_bridge --forms bin,array,json

Building needs cargo and Debian's packaged crates under
``/usr/share/cargo/registry`` (``make conformance-client`` installs them);
without either, :func:`build_client` raises :class:`ClientUnavailable`
saying which is missing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import attrs
from anyio.abc import ByteReceiveStream, ByteSendStream
from anyio.streams.buffered import BufferedByteReceiveStream

from kvruntime import ProcessContext, Runtime, SendError
from protocol.ids import KV_PROCESS_ID

__all__ = [
    "BINARY",
    "CRATE",
    "CRATES",
    "REGISTRY",
    "TARGET",
    "Answer",
    "ClientRun",
    "ClientUnavailable",
    "build_client",
    "run_client",
]

#: The Cargo project of the client.
CRATE = Path(__file__).resolve().parents[2] / "conformance" / "hyperware-kv"
#: Cargo's output (gitignored by the crate's .gitignore).
TARGET = CRATE / "target"
#: The client, once built.
BINARY = TARGET / "release" / "hyperware-kv-conformance"
#: Where Debian's librust-*-dev packages unpack their crates.
REGISTRY = Path("/usr/share/cargo/registry")
#: The crates the client is built from (directory names in the registry start so).
CRATES = ("serde-1", "serde_derive-1", "serde_json-1", "rmp-serde-1", "serde_bytes-0.11")
#: The process the harness runs as; the client sends as its package.
HARNESS_PROCESS = "rust-client:conformance:hyperware.os"
HARNESS_PACKAGE = "conformance:hyperware.os"

_HEAD = struct.Struct(">BI")
_LEN = struct.Struct(">I")


class ClientUnavailable(RuntimeError):
    """The Rust client cannot be built here (cargo or the crates are missing, or cargo failed)."""


@attrs.frozen(kw_only=True)
class Answer:
    """An answer as the harness relays it (a tamper hook may replace it)."""

    body: bytes
    blob: bytes | None
    metadata: str | None


@attrs.frozen(kw_only=True)
class ClientRun:
    """What one run of the client reported."""

    returncode: int
    #: Every report line, in order (``kind``: step, summary, differs, verdict).
    reports: tuple[dict[str, Any], ...]
    stderr: str

    @property
    def steps(self) -> list[dict[str, Any]]:
        """The ``step`` lines."""
        return [line for line in self.reports if line["kind"] == "step"]

    @property
    def summaries(self) -> dict[str, dict[str, Any]]:
        """The ``summary`` line of each form, by form name."""
        return {line["form"]: line for line in self.reports if line["kind"] == "summary"}

    @property
    def differs(self) -> list[dict[str, Any]]:
        """The steps whose answers differ across forms."""
        return [line for line in self.reports if line["kind"] == "differs"]

    @property
    def verdict(self) -> bool | None:
        """The client's verdict (None if it never gave one)."""
        lines = [line for line in self.reports if line["kind"] == "verdict"]
        return bool(lines[-1]["ok"]) if lines else None


def build_client(*, cargo: str = "cargo", registry: Path = REGISTRY) -> Path:
    """Build the client offline from Debian's crates; return the binary's path."""
    cargo_path = shutil.which(cargo)
    if cargo_path is None:
        raise ClientUnavailable(
            f"{cargo!r} is not on PATH: the Rust conformance client needs cargo and rustc "
            "(`make conformance-client` builds it once they are installed)"
        )
    present = {entry.name for entry in registry.iterdir()} if registry.is_dir() else set()
    missing = [crate for crate in CRATES if not any(name.startswith(crate) for name in present)]
    if missing:
        raise ClientUnavailable(
            f"crates missing from {registry}: {', '.join(missing)} "
            "(`make conformance-client` installs Debian's librust-*-dev packages)"
        )
    done = subprocess.run(
        [cargo_path, "build", "--offline", "--release", "--quiet", "--target-dir", TARGET],
        cwd=CRATE,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not BINARY.is_file():
        raise ClientUnavailable(f"cargo build failed ({done.returncode}):\n{done.stderr}")
    return BINARY


def _field(value: bytes | None) -> bytes:
    return b"\x00" if value is None else b"\x01" + _LEN.pack(len(value)) + value


def _take_field(payload: bytes, at: int) -> tuple[bytes | None, int]:
    if payload[at] == 0:
        return None, at + 1
    (length,) = _LEN.unpack_from(payload, at + 1)
    start = at + 1 + _LEN.size
    return payload[start : start + length], start + length


async def _read_frame(stream: BufferedByteReceiveStream) -> tuple[int, bytes] | None:
    """The next frame, or None when the client closed its stdout between frames."""
    try:
        kind, length = _HEAD.unpack(await stream.receive_exactly(_HEAD.size))
    except (anyio.EndOfStream, anyio.IncompleteRead):
        return None
    return kind, await stream.receive_exactly(length)


async def _write_frame(stream: ByteSendStream, kind: bytes, payload: bytes) -> None:
    await stream.send(_HEAD.pack(kind[0], len(payload)) + payload)


Tamper = Callable[[Answer], Answer]


async def _relay(
    ctx: ProcessContext,
    receive: ByteReceiveStream,
    send: ByteSendStream,
    reports: list[dict[str, Any]],
    tamper: Tamper | None,
    request_timeout: float,
) -> None:
    """Serve the client's frames until it closes its stdout."""
    frames = BufferedByteReceiveStream(receive)
    while (frame := await _read_frame(frames)) is not None:
        kind, payload = frame
        if kind == ord("P"):
            reports.append(json.loads(payload))
            continue
        if kind != ord("Q"):
            raise ValueError(f"unknown frame kind {kind:#04x} from the client")
        body, at = _take_field(payload, 0)
        blob, _ = _take_field(payload, at)
        try:
            response = await ctx.send_and_await_response(
                KV_PROCESS_ID, body or b"", blob=blob, timeout=request_timeout
            )
        except SendError as error:
            await _write_frame(send, b"X", str(error).encode())
            continue
        answer = Answer(body=response.body, blob=response.blob, metadata=response.metadata)
        if tamper is not None:
            answer = tamper(answer)
        meta = None if answer.metadata is None else answer.metadata.encode()
        await _write_frame(send, b"A", _field(answer.body) + _field(answer.blob) + _field(meta))


async def run_client(
    rt: Runtime,
    binary: Path,
    *,
    forms: Sequence[str] = ("bin",),
    scenarios: Sequence[str] = ("core", "extensions"),
    tamper: Tamper | None = None,
    request_timeout: float = 30.0,
    run_timeout: float = 120.0,
) -> ClientRun:
    """Run the client in ``forms`` through a harness process of ``rt``.

    ``tamper``, when given, replaces each answer before the client sees it
    (to show that the client notices a wrong one). A client still running
    after ``run_timeout`` seconds is killed (TimeoutError); a whole run takes
    well under a second here.
    """
    reports: list[dict[str, Any]] = []
    outcome: list[ClientRun] = []
    command = [
        str(binary),
        "--package",
        HARNESS_PACKAGE,
        "--forms",
        ",".join(forms),
        "--scenarios",
        ",".join(scenarios),
    ]

    async def harness(ctx: ProcessContext) -> None:
        with anyio.fail_after(run_timeout):
            await serve(ctx)

    async def serve(ctx: ProcessContext) -> None:
        async with await anyio.open_process(command) as client:
            assert client.stdin is not None
            assert client.stdout is not None
            assert client.stderr is not None
            errors = BufferedByteReceiveStream(client.stderr)
            stderr = bytearray()

            async def drain_stderr() -> None:
                while chunk := await _receive_some(errors):
                    stderr.extend(chunk)

            async with anyio.create_task_group() as tg:
                tg.start_soon(drain_stderr)
                await _relay(ctx, client.stdout, client.stdin, reports, tamper, request_timeout)
            returncode = await client.wait()
        text = stderr.decode(errors="replace")
        outcome.append(ClientRun(returncode=returncode, reports=tuple(reports), stderr=text))

    handle = await rt.spawn(HARNESS_PROCESS, harness, request_capabilities=[KV_PROCESS_ID])
    await handle.wait()
    if not outcome:
        raise RuntimeError("the harness process ended without a result (see the runtime log)")
    return outcome[0]


async def _receive_some(stream: BufferedByteReceiveStream) -> bytes:
    """The next bytes of ``stream``, empty at its end."""
    try:
        return await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
        return b""


async def _report(forms: Sequence[str], scenarios: Sequence[str]) -> int:
    binary = build_client()
    with tempfile.TemporaryDirectory() as home:
        async with Runtime(home=Path(home)) as rt:
            run = await run_client(rt, binary, forms=forms, scenarios=scenarios)
    for step in run.steps:
        verdict = "ok  " if step["ok"] else "FAIL"
        print(f"{verdict} [{step['form']}] {step['family']}: {step['step']}: {step['answer']}")
        if not step["ok"]:
            print(f"       {step['problem']}")
    for form, summary in run.summaries.items():
        print(f"{form}: {summary['served']} of {summary['steps']} steps served")
    print(f"steps answered differently across forms: {len(run.differs)}")
    if run.stderr:
        print(run.stderr, end="")
    return run.returncode


def main() -> None:
    """Print each step's outcome in the forms asked, then the counts; exit as the client did."""
    parser = argparse.ArgumentParser(prog="python -m tests.conformance.rust_bridge")
    parser.add_argument("--forms", default="bin", help="comma-separated: bin, array, json")
    parser.add_argument("--scenarios", default="core,extensions", help="core, extensions")
    options = parser.parse_args()
    forms, scenarios = options.forms.split(","), options.scenarios.split(",")
    raise SystemExit(anyio.run(_report, forms, scenarios))


if __name__ == "__main__":
    main()
