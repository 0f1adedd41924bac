"""Bytes -> text, and text cleaned of what a reader never sees.

Text is UTF-8 unless its bytes clearly are another encoding (`decode_text`); every element's text is
passed through `clean_text` before it leaves the parse stage.
"""

from __future__ import annotations

import codecs
import re

import charset_normalizer

BOMS = (  # UTF-32 first: its little-endian mark starts with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# A well-formed UTF-8 sequence of two to four bytes (no overlongs, no surrogates, nothing above U+10FFFF).
UTF8_MULTIBYTE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]"
    rb"|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)
ASCII_BYTES = bytes(range(128))
NOT_ASCII_LETTER_BYTES = bytes(b for b in range(256) if not chr(b).isascii() or not chr(b).isalpha())
NON_LATIN_SHARE = 0.3  # bytes above 127 among letters: a few percent in Western text, most in other scripts
# Windows-1252 symbols that are Windows-1250 letters (³ ¹ ¾ ¼ £ ¥ = ł ą ľ Ľ Ł Ą), next to a letter.
CENTRAL_EUROPEAN_SIGNS = re.compile(r"(?<=[^\W\d_])[\xb3\xb9\xbe\xbc\xa3\xa5]|[\xb3\xb9\xbe\xbc\xa3\xa5](?=[^\W\d_])")
# Control characters, and invisible characters that split words or reverse their display.
INVISIBLE = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f\u200b\u2060\ufeff\u202a-\u202e\u2066-\u2069]")
LINE_BREAK = re.compile(r"\r\n|[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")  # where str.splitlines splits
OTHER_LINE_BREAK = re.compile(r"[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
UNUSUAL_SPACE = re.compile(r"[^\S \n]")  # whitespace other than a space or a line end
SPACE_RUN = re.compile(r"[ \t\xa0]+")
LINE_EDGE_SPACE = re.compile(r"[^\S\n]*\n[^\S\n]*")
BLANK_LINES = re.compile(r"\n{3,}")


def decode_text(data: bytes) -> str:
    """Text from bytes: UTF-8, with U+FFFD for bad bytes, unless the bytes clearly are another encoding.

    A byte-order mark wins; then UTF-16 without one (NUL bytes in every other position); then UTF-8, and a
    file with at least as many valid UTF-8 sequences as bad bytes is UTF-8 with errors, not another encoding
    (guessing one would garble every "ï" that was right, to fix one byte that was wrong). Only bytes that
    are mostly not UTF-8 are legacy text: see `decode_legacy`.
    """
    for bom, encoding in BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(encoding, errors="replace")
    utf16 = _utf16_without_bom(data)
    if utf16 is not None:
        return data.decode(utf16, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", errors="replace")
    valid = sum(1 for _ in UTF8_MULTIBYTE.finditer(data))
    invalid = text.count("\ufffd") - data.count("\ufffd".encode())
    return text if valid >= invalid else decode_legacy(data)


def decode_legacy(data: bytes) -> str:
    """Text in a legacy encoding: Windows-1252 for Latin-script text, unless it reads better as Windows-1250
    (Polish ł and ą come out as ³ and ¹ inside words); other scripts (Cyrillic, Greek, CJK ...), where bytes
    above 127 make up most letters, go to charset_normalizer, which tells those apart well but often takes
    short Western text for Arabic or Central European."""
    high = len(data.translate(None, ASCII_BYTES))
    letters = high + len(data.translate(None, NOT_ASCII_LETTER_BYTES))
    if letters and high / letters > NON_LATIN_SHARE:
        guess = charset_normalizer.from_bytes(data).best()
        if guess is not None:
            return str(guess)
    western = data.decode("cp1252", errors="replace")
    if len(CENTRAL_EUROPEAN_SIGNS.findall(western)) >= 2 or "\ufffd" in western:
        central = data.decode("cp1250", errors="replace")
        if not CENTRAL_EUROPEAN_SIGNS.search(central) and central.count("\ufffd") <= western.count("\ufffd"):
            return central
    return western


def _utf16_without_bom(data: bytes) -> str | None:
    """"utf-16-le" or "utf-16-be" for text whose every other byte is mostly NUL (Latin script in UTF-16)."""
    sample = data[:4096]
    half = len(sample) // 2
    if half < 2:
        return None
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    for nuls, others, encoding in ((odd, even, "utf-16-le"), (even, odd, "utf-16-be")):
        if nuls >= 0.4 * half and others <= 0.05 * half:
            try:
                data[: len(data) - len(data) % 2].decode(encoding)
            except UnicodeDecodeError:
                return None
            return encoding
    return None


def clean_text(text: str) -> str:
    """Text without control or invisible characters and without trailing spaces on its lines.

    Each whole-text substitution runs only when a quick search says it would change something, so the
    common case (a million table rows, plain prose) costs a few scans at C speed.
    """
    text = INVISIBLE.sub("", text)
    if "\r" in text or OTHER_LINE_BREAK.search(text):
        text = LINE_BREAK.sub("\n", text)
    if "  " in text or "\t" in text or "\xa0" in text:
        text = SPACE_RUN.sub(" ", text)
    if " \n" in text or "\n " in text or UNUSUAL_SPACE.search(text):
        text = LINE_EDGE_SPACE.sub("\n", text)
    if "\n\n\n" in text:
        text = BLANK_LINES.sub("\n\n", text)
    return text.strip()
