"""conformance.results.traces: slicing pkcs11-spy logs per check, PIN redaction, bounded summaries.

tests/data/spy_sample.log was recorded with OpenSC 0.23's pkcs11-spy over SoftHSM 2.6 (mechanism lists and
attribute reads cut out). Its PINs are fakes: user 'canary-4711' (also set to 'canary-4711-canary-4711-long',
longer than one 16-byte dump line, and back), SO b'so\\x01\\xffcanary-4711-so' (non-printable bytes), a
NULL-PIN C_Login and an empty-PIN C_Login.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.results.traces import TraceCursor, read_slice, redact_trace, summarise, trace_slice

DATA = Path(__file__).parent / "data" / "spy_sample.log"
USER_PIN = "canary-4711"
LONG_PIN = "canary-4711-canary-4711-long"
SO_PIN = "so\x01\xffcanary-4711-so"  # as recorded: bytes 73 6F 01 FF ...
PIN_HEADER = re.compile(r"^\[(?:in|out)\] p\w*Pin\[", re.MULTILINE | re.IGNORECASE)


def sample() -> str:
    return DATA.read_text(encoding="utf-8", errors="replace")


def leaks(text: str, pin: str | bytes) -> list[str]:
    """Every form of `pin` spy could print that is still in `text`: the literal, and any 4-byte window of its
    hex once all whitespace is gone (covers "XX XX " dumps, 4-byte groups and line splits alike)."""
    raw = pin if isinstance(pin, bytes) else pin.encode()
    found = []
    printable = raw.decode("latin-1")
    if len(raw) >= 4 and printable in text:
        found.append("literal")
    squashed = re.sub(r"\s+", "", text).upper()
    for i in range(len(raw) - 3):
        window = raw[i:i + 4].hex().upper()
        if window in squashed:
            found.append(f"hex {window}")
    # the ASCII columns: any 6 consecutive printable characters of the PIN
    chars = "".join(chr(b) if 31 < b < 128 else "." for b in raw)
    for i in range(len(chars) - 5):
        if "." not in chars[i:i + 6] and chars[i:i + 6] in text:
            found.append(f"ascii {chars[i:i + 6]!r}")
    return found


def pin_blocks_clean(text: str) -> None:
    """Each PIN argument is one line saying it was redacted (or NULL), with no dump lines after it."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if PIN_HEADER.match(line):
            assert line.endswith("(PIN argument redacted)") or "NULL [size" in line, line
            assert i + 1 == len(lines) or not re.match(r"^    [0-9A-F]{8}  ", lines[i + 1]), lines[i + 1]


# --- the recorded sample -------------------------------------------------------------------------------

def test_sample_really_holds_the_pins_in_every_form() -> None:
    text = sample()
    assert leaks(text, USER_PIN) and leaks(text, SO_PIN.encode("latin-1")) and leaks(text, LONG_PIN)
    assert re.search(r"2D 63 61 6E 61 .*\n    00000010  72 79 2D 34", text)  # a PIN split over two dump lines


@pytest.mark.parametrize("pins", [[USER_PIN, SO_PIN], []], ids=["known-pins", "no-pins-known"])
def test_every_pin_argument_is_dropped_whatever_the_pin(pins: list[str]) -> None:
    out = redact_trace(sample(), pins)
    for pin in (USER_PIN, LONG_PIN, SO_PIN.encode("latin-1")):
        assert leaks(out, pin) == []
    assert "canary" not in out
    pin_blocks_clean(out)
    assert out.count("(PIN argument redacted)") == 10  # InitToken, 2 SO + 3 user logins, InitPIN, 2 x SetPIN (2)


def test_what_is_not_a_pin_survives() -> None:
    out = redact_trace(sample(), [USER_PIN, SO_PIN])
    assert "[in] pPin[ulPinLen] NULL [size : 0x0 (0)]" in out  # tells a protected-auth login apart
    assert "spy-sample" in out and "sixteen byte msg" in out  # pLabel, pData dumps
    assert "73616D70 6C652D61 6573" in out  # CKA_LABEL in print_print's format
    assert "Returned:  160 CKR_PIN_INCORRECT" in out and "[in] userType = CKU_SO" in out
    assert len(re.findall(r"^\d+: C_\w+$", out, re.MULTILINE)) == len(re.findall(r"^\d+: C_\w+$", sample(), re.MULTILINE))


def test_a_slice_starting_inside_a_pin_block_drops_the_orphan_lines() -> None:
    text = sample()
    cut = text.index("    00000010  72 79 2D 34 37")  # second dump line of a pNewPin block
    out = redact_trace(text[cut:], [])
    assert not out.startswith("    00000010  72")
    assert out.startswith("    *** (dump line dropped")


def test_interleaved_dump_line_with_a_known_pin_piece_is_dropped() -> None:
    # Another thread's header between a PIN header and its dump (spy does not lock): the owner looks harmless.
    text = ("[in] pPin[ulPinLen] 00007f0000000010 / 11\n"
            "[in] pData[ulDataLen] 00007f0000000020 / 4\n"
            "    00000000  61 72 79 2D 34 37 31 31                          ary-4711        \n"
            "    00000000  DE AD BE EF                                      ....            \n")
    out = redact_trace(text, [USER_PIN])
    assert "61 72 79 2D" not in out and "ary-4711" not in out
    assert "DE AD BE EF" in out


def test_known_pin_in_attribute_values_is_replaced_in_both_print_formats() -> None:
    text = ("    CKA_LABEL             00007f774ae6cb10 / 11\n"
            "    63616E61 72792D34 373131\n"
            "     c a n a  r y - 4  7 1 1\n"
            "note: canary-4711 and 63616e6172792d34373131\n")
    out = redact_trace(text, [USER_PIN])
    assert "canary" not in out and leaks(out, USER_PIN) == []
    assert "CKA_LABEL" in out


# --- slicing -------------------------------------------------------------------------------------------

def test_cursor_on_a_log_that_does_not_exist_yet(tmp_path: Path) -> None:
    log = tmp_path / "spy.log"
    cursor = TraceCursor(log)
    assert cursor.mark() == 0 and cursor.read() == ""
    log.write_text("\n0: C_GetFunctionList\nReturned:  0 CKR_OK\n")
    assert "C_GetFunctionList" in cursor.read()
    assert TraceCursor(None).read() == "" and read_slice(None, 0) == ""


def test_cursor_returns_only_what_was_appended(tmp_path: Path) -> None:
    log = tmp_path / "spy.log"
    log.write_text("\n0: C_Initialize\nReturned:  0 CKR_OK\n")
    cursor = TraceCursor(log)
    start = cursor.mark()
    with open(log, "a") as fh:
        fh.write("\n1: C_Finalize\nReturned:  0 CKR_OK\n")
    assert cursor.read() == "\n1: C_Finalize\nReturned:  0 CKR_OK\n"
    assert read_slice(log, 0, start) == "\n0: C_Initialize\nReturned:  0 CKR_OK\n"


def test_cursor_after_truncation_reads_from_the_start(tmp_path: Path) -> None:
    log = tmp_path / "spy.log"
    log.write_text("x" * 500 + "\n")
    cursor = TraceCursor(log)
    cursor.mark()
    log.write_text("\n0: C_Login\n")  # replaced: shorter than the mark
    assert cursor.read() == "\n0: C_Login\n"


def test_slice_starting_mid_line_drops_the_partial_line(tmp_path: Path) -> None:
    log = tmp_path / "spy.log"
    log.write_bytes(b"[in] pPin[ulPinLen] 00007f / 11\n    00000000  63 61 6E 61 72 79  canary\nReturned:  0 CKR_OK\n")
    start = log.read_bytes().index(b"6E 61")  # inside the dump line
    assert read_slice(log, start) == "Returned:  0 CKR_OK\n"


def test_undecodable_bytes_do_not_break_reading(tmp_path: Path) -> None:
    log = tmp_path / "spy.log"
    log.write_bytes(b"\n0: C_GetInfo\n\xff\xfe label\n")
    assert "C_GetInfo" in read_slice(log, 0)


# --- summaries -----------------------------------------------------------------------------------------

def test_summarise_keeps_the_last_calls_and_says_how_many_were_cut() -> None:
    text = "".join(f"\n{i}: C_GetInfo\nReturned:  0 CKR_OK\n" for i in range(100))
    out = summarise(text, limit=5)
    assert out.startswith("[95 earlier call(s) cut]\n")
    assert "95: C_GetInfo" in out and "94: C_GetInfo" not in out
    assert summarise(text, limit=200) == text


def test_summarise_bounds_the_size_on_a_call_boundary() -> None:
    text = "".join(f"\n{i}: C_Encrypt\n" + "    00000000  00\n" * 40 + "Returned:  0 CKR_OK\n" for i in range(50))
    out = summarise(text, limit=1000, max_chars=3000)
    body = out.split("\n", 1)[1]
    assert len(body) <= 3000 and re.match(r"\d+: C_Encrypt", body)
    cut = int(re.match(r"\[(\d+) earlier", out).group(1))  # type: ignore[union-attr]
    assert body.startswith(f"{cut}: C_Encrypt")


def test_summarise_of_one_huge_call_is_still_bounded() -> None:
    text = "\n0: C_Encrypt\n" + "    00000000  00\n" * 10_000
    out = summarise(text, limit=10, max_chars=1000)
    assert len(out) < 1100 and "start of the next one" in out


def test_trace_slice_redacts_and_bounds(tmp_path: Path) -> None:
    log = tmp_path / "spy.log"
    log.write_text(sample())
    out = trace_slice(log, 0, [], limit=3)
    assert "canary" not in out and out.startswith("[")


# --- the real spy --------------------------------------------------------------------------------------

SPY = "/usr/lib/x86_64-linux-gnu/pkcs11-spy.so"
SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"
CANARY, CANARY_SO = "canary-4711", "canary-so-0815"
CANARY_LONG = "canary-4711-longer-than-sixteen-bytes"

SESSION = r"""
import os, pkcs11
lib = pkcs11.lib(os.environ["P11_MODULE"])
tok = lib.get_token(token_label="spy-trace")
pin, so, long = os.environ["C_PIN"], os.environ["C_SO"], os.environ["C_LONG"]
with tok.open(rw=True, user_pin=pin) as s:
    s.set_pin(pin, long)
    s.set_pin(long, pin)
with tok.open(rw=True, so_pin=so) as s:
    s.init_pin(pin)
try:
    tok.open(user_pin=pin + "-wrong").close()
except pkcs11.PinIncorrect:
    pass
print("OK")
"""


@pytest.mark.skipif(not (Path(SPY).exists() and Path(SOFTHSM).exists()),
                    reason="needs pkcs11-spy and SoftHSM (apt-get install opensc-pkcs11 softhsm2)")
def test_real_spy_trace_never_shows_the_canary(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    log = tmp_path / "spy.log"
    env = {**os.environ, "SOFTHSM2_CONF": str(conf), "PKCS11SPY": SOFTHSM, "PKCS11SPY_OUTPUT": str(log),
           "P11_MODULE": SPY, "C_PIN": CANARY, "C_SO": CANARY_SO, "C_LONG": CANARY_LONG}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "spy-trace", "--pin", CANARY,
                    "--so-pin", CANARY_SO], env=env, check=True, capture_output=True)
    cursor = TraceCursor(log)
    cursor.mark()
    proc = subprocess.run([sys.executable, "-c", SESSION], env=env, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "OK", proc.stderr[-2000:]
    raw = cursor.read()
    assert "C_Login" in raw and "C_SetPIN" in raw and "C_InitPIN" in raw
    assert leaks(raw, CANARY) and leaks(raw, CANARY_LONG)  # the spy did print them
    for pins in ([CANARY, CANARY_SO, CANARY_LONG], []):
        out = redact_trace(raw, pins)
        for pin in (CANARY, CANARY_SO, CANARY_LONG, CANARY + "-wrong"):
            assert leaks(out, pin) == [], (pins, pin)
        assert "canary" not in out
        pin_blocks_clean(out)
        assert "C_Login" in out and "CKR_PIN_INCORRECT" in out


def test_trace_slice_of_a_huge_log_cuts_before_redacting_and_counts_every_cut_call(tmp_path: Path) -> None:
    log = tmp_path / "spy.log"
    call = ("\n{i}: C_Login\n[in] pPin[ulPinLen] 00007f0000000010 / 11\n"
            "    00000000  63 61 6E 61 72 79 2D 34 37 31 31                 canary-4711     \n"
            "Returned:  0 CKR_OK\n")
    log.write_text("".join(call.format(i=i) for i in range(5000)))
    out = trace_slice(log, 0, [], limit=10, max_chars=2000)
    assert out.startswith("[4990 earlier call(s) cut]\n") and "4999: C_Login" in out
    assert "canary" not in out and "63 61 6E" not in out
