"""Text from the API (tags, names, messages that quote them) is data: these make it inert.

One local helper per medium (`one_line` could give way to common/display.py's `for_terminal()`);
HTML uses the standard library's escape.
"""
from __future__ import annotations

import re
from html import escape as html

__all__ = ["html", "markdown", "markdown_code", "one_line"]

# C0 and C1 controls, DEL, and the Unicode format characters that reorder or hide text (bidi
# overrides and isolates, zero-width marks, line and paragraph separators).
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_SPACE = re.compile(r"\s+")
# Every ASCII punctuation character may be backslash-escaped in CommonMark/GFM: escaping all of
# them leaves no emphasis, link, autolink, table cell or raw HTML to open.
_MD_PUNCT = re.compile(r"([!-/:-@\[-`{-~])")


def _visible(match: re.Match) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def one_line(text: object, limit: int | None = None) -> str:
    """One line for a terminal or a log: whitespace (newlines too) collapsed to single spaces, any
    other control or format character shown as a visible escape (an ESC never reaches the tty)."""
    s = _SPACE.sub(" ", _CONTROL.sub(_visible, str(text))).strip()
    if limit is not None and len(s) > limit:
        s = s[: max(0, limit - 1)] + "…"
    return s


def markdown(text: object, limit: int | None = None) -> str:
    """One line of Markdown text that renders as exactly these characters (also inside a table)."""
    return _MD_PUNCT.sub(r"\\\1", one_line(text, limit))


def markdown_code(text: object) -> str:
    """A code span holding text of our own making (check ids): fenced with more backticks than it holds."""
    s = one_line(text)
    fence = "`" * (max((len(m) for m in re.findall(r"`+", s)), default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{fence}{pad}{s}{pad}{fence}"
