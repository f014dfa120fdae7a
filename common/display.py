"""Text from the AWS API is data: how it is shown on a terminal and in the report.

Whoever may tag a resource (ec2:CreateTags) or name a security group or key pair writes these
strings, and this tool prints them on a terminal and into a report a reviewer trusts. Shown as
they are, a Name tag could end the line and print a verdict of its own, move the cursor or recolour
the screen (C0/C1 control sequences, U+009B is a one-character CSI), reverse the text that follows
it (bidi overrides), or fill a screen. So every such string is neutralised before it is shown:

- control characters (C0, DEL, C1), format characters (bidi embeddings, overrides, isolates and
  marks U+202A-U+202E, U+2066-U+2069, U+200E/U+200F, zero-width characters), line and paragraph
  separators (U+2028, U+2029) and newlines become visible escapes: `\\n`, `\\x9b`, `\\u202e`;
- the result is capped at a length (NAME for a name or tag, LINE for a message) with an ellipsis.

Every other character (Japanese names included) is shown as it is. The report HTML-escapes on top.
"""
from __future__ import annotations

import unicodedata

NAME = 80        # a name or a tag value: AWS allows 256 characters, a line shows this many
LINE = 1000      # a message that quotes names (an error from the API, a check's reason)
ELLIPSIS = "…"
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Cc: C0, DEL, C1. Cf: bidi controls, zero-width and other invisible format characters.
# Zl, Zp: line and paragraph separators. Cs: lone surrogates (undecodable bytes).
_UNSAFE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def neutralise(text: object) -> str:
    """`text` on one line with every control, format and separator character shown as an escape."""
    s = str(text)
    if s.isprintable():     # the common case: nothing to do
        return s
    return "".join(_escape(ch) if unicodedata.category(ch) in _UNSAFE else ch for ch in s)


def _cap(s: str, limit: int | None) -> str:
    if limit is None or len(s) <= limit:
        return s
    return s[:limit - 1] + ELLIPSIS


def for_terminal(text: object, limit: int | None = NAME) -> str:
    """API text for a terminal line: neutralised, at most `limit` characters (None: no cap)."""
    return _cap(neutralise(text), limit)


def for_report(text: object, limit: int | None = None, multiline: bool = False) -> str:
    """API text for the report (the renderer HTML-escapes it): neutralised like for_terminal; with
    `multiline`, the line breaks of evidence the project wrote itself stay, each line neutralised."""
    if multiline:
        return "\n".join(_cap(neutralise(line), limit) for line in str(text).split("\n"))
    return _cap(neutralise(text), limit)
