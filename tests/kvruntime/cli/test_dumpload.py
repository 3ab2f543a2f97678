"""dump and load: the documented line format, byte for byte, and its error paths."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from kvruntime.cli._dumpformat import (
    DumpFormatError,
    End,
    Header,
    Record,
    end_line,
    header_line,
    parse_line,
    record_line,
)
from kvruntime.cli.dumpload import CHUNK_ENTRIES

from .conftest import APP, fail, fill, kvr, ok, read

# Binary keys and values, an empty value, a 1 MiB value, text, and enough
# entries for more than one load chunk.
ENTRIES: dict[bytes, bytes] = {
    b"\x00": b"\x00\x01\x02",
    b"\xff\xfe": b"",
    b"text": "héllo wörld\n".encode(),
    b"big": bytes(range(256)) * 4096,
    **{b"n:%05d" % i: i.to_bytes(4, "big") for i in range(CHUNK_ENTRIES + 20)},
}


def test_dump_then_load_into_a_new_db_reproduces_every_byte(home: Path, tmp_path: Path) -> None:
    assert len(ENTRIES[b"big"]) == 1024 * 1024
    fill(home, "src", ENTRIES.items())
    dumped = kvr("dump", APP, "src", home=home)
    assert dumped.returncode == 0, dumped.stderr.decode()
    assert f"dumped {len(ENTRIES)} entries of [{APP}, src]" in dumped.stderr.decode()
    lines = dumped.stdout.splitlines()
    assert json.loads(lines[0]) == {
        "format": "kvruntime-dump",
        "version": 1,
        "package": APP,
        "db": "src",
    }
    assert json.loads(lines[-1]) == {"end": {"count": len(ENTRIES)}}
    records = [json.loads(line) for line in lines[1:-1]]
    keys = [base64.b64decode(r["k"]) for r in records]
    assert keys == sorted(ENTRIES)  # key order
    fail(kvr("load", APP, "copy", home=home, stdin=dumped.stdout), 1, "use --create")
    report = ok(kvr("load", APP, "copy", "--create", home=home, stdin=dumped.stdout))
    assert f"loaded {len(ENTRIES)} entries into [{APP}, copy] in 2 chunks" in report
    assert read(home, "copy", ENTRIES) == ENTRIES
    again = kvr("dump", APP, "copy", home=home)
    assert again.stdout.splitlines()[1:] == lines[1:]  # same records, same trailer


def test_load_rejects_bad_input_and_keeps_complete_chunks(home: Path) -> None:
    fill(home, "dst", [(b"keep", b"me")])
    good = header_line(APP, "x") + b"".join(record_line(b"k%d" % i, b"v") for i in range(3))
    fail(kvr("load", APP, "dst", home=home, stdin=b"hello\n"), 2, "line 1: not JSON")
    deep = good + b"[" * 100_000 + b"]" * 100_000 + b"\n"
    fail(kvr("load", APP, "dst", home=home, stdin=deep), 2, "line 5: not a dump line: JSON nested")
    fail(kvr("load", APP, "dst", home=home, stdin=b""), 2, "the input is empty")
    fail(kvr("load", APP, "dst", home=home, stdin=record_line(b"a", b"b")), 2, "not a dump header")
    v2 = header_line(APP, "x").replace(b'"version":1', b'"version":2')
    fail(kvr("load", APP, "dst", home=home, stdin=v2), 2, "version 2 is not supported")
    bad = good + b'{"k": "!!", "v": ""}\n' + end_line(4)
    fail(kvr("load", APP, "dst", home=home, stdin=bad), 2, "line 5: k is not base64")
    fail(kvr("load", APP, "dst", home=home, stdin=good + end_line(9)), 2, "counts 9 entries")
    assert read(home, "dst", [b"k0"]) == {b"k0": None}  # a bad chunk writes nothing
    truncated = kvr("load", APP, "dst", home=home, stdin=good)
    fail(truncated, 2, "line 5: the dump ends without its trailer line")
    assert read(home, "dst", [b"k0", b"k2", b"keep"]) == {b"k0": None, b"k2": None, b"keep": b"me"}


def test_dump_of_a_missing_db_or_home_fails(home: Path) -> None:
    fail(kvr("dump", APP, "nope", home=home), 3, "does not exist")
    fill(home, "src", [])
    fail(kvr("dump", APP, "nope", home=home), 1, f"db [{APP}, nope] does not exist")


def test_format_lines_round_trip() -> None:
    assert parse_line(header_line(APP, "db")) == Header(package=APP, db="db")
    assert parse_line(record_line(b"\x00k", b"")) == Record(key=b"\x00k", value=b"")
    assert parse_line(end_line(7)) == End(count=7)
    for bad, why in [
        (b"[]", "not a JSON object"),
        (b'{"k": "a"}', "unexpected fields"),
        (b'{"end": {"count": -1}}', "trailer"),
        (b'{"format": "other", "version": 1, "package": "a:b", "db": "c"}', "not a kvruntime"),
        (b'{"k": 1, "v": ""}', "k is not a base64 string"),
        (b"\xff\xfe\n", "not UTF-8 text"),  # json.loads alone would try UTF-16
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ]:
        with pytest.raises(DumpFormatError, match=why):
            parse_line(bad)
