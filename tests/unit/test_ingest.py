"""Reading `ytpiped add` inputs with bounds: long lines, endless devices, FIFOs, BOMs."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest

from ytpiped import ingest
from ytpiped.errors import UsageError

GOOD = "https://youtu.be/aaaaaaaaaaa"


def test_a_huge_line_is_one_invalid_line(tmp_path: Path) -> None:
    f = tmp_path / "urls.txt"
    f.write_bytes(GOOD.encode() + b"\nhttps://example.com/" + b"x" * 20_000
                  + b"\r\nhttps://youtu.be/bbbbbbbbbbb\r\n")
    targets, report = ingest.collect([ingest.read_source(str(f))])
    assert [t.id for t in targets] == ["aaaaaaaaaaa", "bbbbbbbbbbb"]
    (bad,) = report.invalid
    assert (bad.line, bad.reason) == (2, "line longer than 8 KiB")
    assert bad.text.startswith("https://example.com/xxx") and len(bad.text) <= 200


@pytest.mark.parametrize("block", [1, 2, 7, 4096, 9000])
def test_lines_are_the_same_whatever_the_read_size(tmp_path: Path, block: int,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    body = ("\ufeff" + GOOD + "\r\n# café ☕ comment\n\n" + "https://example.com/" + "é" * 5000
            + "\nhttps://youtu.be/bbbbbbbbbbb?x=\x00\nhttps://youtu.be/ccccccccccc").encode()
    f = tmp_path / "urls.txt"
    f.write_bytes(body)
    expected = ingest.read_source(str(f))
    monkeypatch.setattr(ingest, "BLOCK", block)
    got = ingest.read_source(str(f))
    assert got == expected
    targets, report = ingest.collect([got])
    assert [t.id for t in targets] == ["aaaaaaaaaaa", "ccccccccccc"]
    assert [(i.line, i.reason.split(" (")[0]) for i in report.invalid] == [
        (4, "line longer than 8 KiB"), (5, "contains a control or invisible character")]


def test_dev_zero_is_refused_quickly_without_reading_it_all() -> None:
    with pytest.raises(UsageError, match=r"/dev/zero: line 1 runs past 1 MiB without a line "
                                         r"break: not a list of URLs"):
        ingest.read_source("/dev/zero")


def test_a_fifo_with_no_writer_is_an_error_after_the_timeout(tmp_path: Path) -> None:
    fifo = tmp_path / "urls.fifo"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match=rf"{fifo}: no input for 0.2 s .*add\.read_timeout_s"):
        ingest.read_source(str(fifo), timeout_s=0.2)


def test_a_fifo_with_a_writer_is_read_to_its_end(tmp_path: Path) -> None:
    fifo = tmp_path / "urls.fifo"
    os.mkfifo(fifo)

    def write() -> None:
        with fifo.open("w") as fh:
            fh.write(f"{GOOD}\nhttps://youtu.be/bbbbbbbbbbb\n")

    writer = threading.Thread(target=write)
    writer.start()
    try:
        name, lines, too_long = ingest.read_source(str(fifo), timeout_s=30)
    finally:
        writer.join()
    assert (name, lines, too_long) == (str(fifo), [GOOD, "https://youtu.be/bbbbbbbbbbb"], ())


def test_a_bom_on_stdin_is_stripped() -> None:
    stdin = io.BytesIO(b"\xef\xbb\xbf" + GOOD.encode() + b"\n")
    targets, report = ingest.collect([ingest.read_source("-", stdin)])
    assert [t.id for t in targets] == ["aaaaaaaaaaa"] and report.invalid == []


def test_stdin_that_is_not_utf8_names_the_line() -> None:
    with pytest.raises(UsageError, match=r"<stdin>: not UTF-8 text \(invalid byte at line 2\)"):
        ingest.read_source("-", io.BytesIO(GOOD.encode() + b"\ncaf\xe9\n"))
