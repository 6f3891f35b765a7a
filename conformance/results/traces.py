"""Call traces from OpenSC's pkcs11-spy: the slice of the log one check produced, with every PIN removed, cut
to a size a report can carry.

How pkcs11-spy (OpenSC 0.23) prints a PIN — C_Login, C_InitPIN, C_InitToken (`pPin[ulPinLen]`) and C_SetPIN
(`pOldPin[ulOldLen]`, `pNewPin[ulNewLen]`) all go through print_generic:

    [in] pPin[ulPinLen] 00007fd6fa581910 / 11
        00000000  63 61 6E 61 72 79 2D 34 37 31 31                 canary-4711
    [in] pNewPin[ulNewLen] 00007fd6fa1ab840 / 22
        00000000  73 6F 01 FF 63 61 6E 61 72 79 2D 34 37 31 31 2D  so..canary-4711-
        00000010  73 6F 2D 70 69 6E                                so-pin

a header with the buffer's address and length, then one line per 16 bytes: offset, upper-case hex pairs
separated by single spaces, and the bytes as ASCII ('.' for anything outside 32..127). A PIN longer than
16 bytes is split across lines, in hex and in ASCII alike, so replacing the PIN's text is not enough: the
whole argument block is dropped, whatever the PIN. A NULL PIN prints `NULL [size : 0x0 (0)]` (kept: no
secret in it, and it tells a protected-authentication-path login apart).

Spy does not lock its output between threads, so a PIN's dump lines can in principle land after another
thread's line, and a slice can start inside a block. Hence more passes: dump lines whose owner is not known
(at the start of a slice) are dropped; every dump line holding 4 consecutive bytes of a known PIN is dropped;
and the known PINs are replaced anywhere, as text and as hex in any spacing. Attribute values (CKA_LABEL...)
use a second format, print_print: compact hex in 4-byte groups ("63616E61 72792D34") over a spaced ASCII
line (" c a n a  r y - 4"); both forms of a known PIN are replaced there too.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..pins import REDACTED

# `[in] pPin[ulPinLen] ...`, `[in] pOldPin[ulOldLen] ...`, `[in] pNewPin[ulNewLen] ...`
_PIN_ARG = re.compile(r"^\[(?:in|out)\] p\w*Pin\[\w*\] ?(?P<rest>.*)$", re.IGNORECASE)
# print_generic's dump line: 4 spaces, 8 hex digits offset, 2 spaces, up to 16 "XX " groups, ASCII column
_DUMP = re.compile(r"^    [0-9A-F]{8}  (?P<hex>(?:[0-9A-F]{2} ){0,16})")
# a call record starts with "N: C_Name" (after a blank line)
_CALL = re.compile(r"^\d+: C_\w+\s*$", re.MULTILINE)
_MIN_PIECE = 4  # a dump line sharing this many consecutive bytes with a known PIN is dropped


@dataclass
class TraceCursor:
    """Remember where a log ends before a check, read what the check added after it.

    The log may not exist yet (spy opens it on the first C_GetFunctionList) or may have been truncated or
    replaced in between; then the slice starts at the beginning.
    """

    path: str | os.PathLike[str] | None
    start: int = 0

    def mark(self) -> int:
        self.start = _size(self.path)
        return self.start

    def read(self) -> str:
        """The bytes appended since mark(), as text (undecodable bytes replaced), not yet redacted."""
        return read_slice(self.path, self.start)


def _size(path: str | os.PathLike[str] | None) -> int:
    if path is None:
        return 0
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def read_slice(path: str | os.PathLike[str] | None, start: int, end: int | None = None) -> str:
    """Bytes [start, end) of the log as text; '' when there is no log; from 0 when it shrank below start."""
    if path is None:
        return ""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if start > size:  # truncated or replaced since mark(): all of it is new
                start = 0
            fh.seek(max(0, start - 1))
            data = fh.read(-1 if end is None else max(0, end - start + (1 if start else 0)))
    except OSError:
        return ""
    if start:
        # Begin on a line: a partial first line (a dump cut in two) would not be recognised as a dump.
        data = data[1:] if data[:1] == b"\n" else data.partition(b"\n")[2]
    return data.decode("utf-8", errors="replace")


def redact_trace(text: str, pins: list[str]) -> str:
    """Drop every PIN-carrying argument block, dump lines of unknown owner and any line holding a piece of a
    known PIN; then replace the known PINs' literal and hex forms anywhere."""
    secrets = [p for p in pins if p]
    pieces = _pieces(secrets)
    out: list[str] = []
    owner_sensitive: bool | None = None  # None: no owner seen yet (slice started inside a block)
    for line in text.split("\n"):
        dump = _DUMP.match(line)
        if dump is not None:
            if owner_sensitive is False and not _has_piece(dump.group("hex"), pieces):
                out.append(line)
            elif owner_sensitive is not True:  # owner unknown, or a known PIN's bytes in it
                out.append(f"    {REDACTED} (dump line dropped: possible PIN)")
            continue  # (a PIN block's header already says it was redacted)
        arg = _PIN_ARG.match(line)
        if arg is not None:
            rest = arg.group("rest")
            if rest.startswith("NULL"):
                out.append(line)  # a NULL PIN pointer carries nothing secret
                owner_sensitive = False
            else:
                head = line[: len(line) - len(rest)].rstrip()
                out.append(f"{head} {REDACTED} (PIN argument redacted)")
                owner_sensitive = True
            continue
        owner_sensitive = False
        out.append(line)
    return _redact_forms("\n".join(out), secrets)


def _pieces(secrets: list[str]) -> set[str]:
    """Every run of _MIN_PIECE consecutive bytes (the whole PIN when shorter) as spy's hex, 'XX XX '."""
    found: set[str] = set()
    for secret in secrets:
        raw = secret.encode("utf-8")
        k = min(len(raw), _MIN_PIECE)
        for i in range(len(raw) - k + 1):
            found.add("".join(f"{b:02X} " for b in raw[i:i + k]))
    return found


def _has_piece(hex_column: str, pieces: set[str]) -> bool:
    return any(piece in hex_column for piece in pieces)


def _redact_forms(text: str, secrets: list[str]) -> str:
    """Known PINs anywhere (a check may put one in a label or in data): as text; as hex with any spacing
    between the bytes, either case (print_generic's "63 61 6E", print_print's "63616E61 72"); and as
    print_print's spaced ASCII (" c a n a  r y")."""
    patterns: list[str] = []
    for secret in sorted(secrets, key=len, reverse=True):
        raw = secret.encode("utf-8")
        if len(raw) >= 2:  # a one-byte PIN's hex ("31") would match half the trace
            patterns.append(r"\s*".join(f"{b:02X}" for b in raw))
        if len(raw) >= 4:  # print_print shows bytes outside 33..127 as '.'
            patterns.append(r" {1,2}".join(re.escape(chr(b)) if 32 < b < 128 else r"\." for b in raw))
        patterns.append(re.escape(secret))
    if not patterns:
        return text
    # One alternation, longest PINs first: a PIN containing another is replaced whole.
    return re.sub("|".join(f"(?:{p})" for p in patterns), REDACTED, text, flags=re.IGNORECASE)


def summarise(text: str, limit: int = 40, max_chars: int = 20_000) -> str:
    """The last `limit` calls of a (redacted) trace, at most about `max_chars` long, with a note of what
    was cut (the cut falls on a call boundary when one is in reach)."""
    starts = [m.start() for m in _CALL.finditer(text)]
    keep_from = starts[-limit] if limit > 0 and len(starts) > limit else (len(text) if limit <= 0 else 0)
    if len(text) - keep_from > max_chars:
        keep_from = len(text) - max_chars
        boundary = next((s for s in starts if s >= keep_from), None)
        if boundary is not None:
            keep_from = boundary
    if keep_from == 0:
        return text
    cut_calls = sum(1 for s in starts if s < keep_from)
    note = f"[{cut_calls} earlier call(s) cut"
    if keep_from not in starts and keep_from < len(text):
        note += f", and the start of the next one ({keep_from} characters in all)"
    return note + "]\n" + text[keep_from:]


def trace_slice(path: str | os.PathLike[str] | None, start: int, pins: list[str], limit: int = 40,
                max_chars: int = 20_000) -> str:
    """What a check left in the spy log since `start`, redacted and bounded: ready for a report."""
    text = read_slice(path, start)
    cut = 0
    if len(text) > 8 * max_chars:
        # Redacting megabytes only to keep 20 kB is waste (spy dumps every data buffer); cut first, but only on
        # a call boundary, where no PIN block can be split.
        boundary = _CALL.search(text, len(text) - 8 * max_chars)
        if boundary is not None:
            cut = len(_CALL.findall(text, 0, boundary.start()))
            text = text[boundary.start():]
    out = summarise(redact_trace(text, pins), limit, max_chars)
    if cut:
        m = re.match(r"\[(\d+) earlier call\(s\) cut", out)
        out = (f"[{int(m.group(1)) + cut}" + out[m.end(1):]) if m else f"[{cut} earlier call(s) cut]\n{out}"
    return out
