"""The fenced shell blocks of the project's READMEs, as a new user would type them.

A block runs in a clean shell (no variable of this process's, no AWS settings) from the top of a
copy of the repository; each command's exit status must be 0 unless its own comment announces
another one (`# exits 1: ...`). A block that can't run here says so just above its fence, visibly
in the source and invisibly on the rendered page:

    <!-- readme-test: skip (a real AWS account) -->
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

DOCS = ("README.md", "lab/README.md", "emulator/README.md", "examples/iam/README.md")
SHELLS = {"sh", "bash", "shell"}
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\s*\((?P<why>[^)]+)\)\s*-->")
EXITS = re.compile(r"\bexits (?P<rc>\d+)\b")


@dataclass
class Command:
    line: int          # in its file
    text: str          # without its comment
    expect: int        # the exit status the text announces (0 unless it says otherwise)


@dataclass
class Block:
    doc: str
    line: int          # of the opening fence
    lang: str
    source: str
    skip: str | None = None
    commands: list[Command] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


def split_comment(line: str) -> tuple[str, str]:
    """(command, comment): the comment starts at a `#` outside quotes after whitespace (or at the start)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1:].strip()
    return line.rstrip(), ""


def commands_of(source: str, first_line: int) -> list[Command]:
    out: list[Command] = []
    pending, start = "", 0
    for n, raw in enumerate(source.splitlines(), start=first_line):
        text, comment = split_comment(raw)
        if not pending:
            start = n
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        text = pending + text
        pending = ""
        if not text.strip():
            continue
        m = EXITS.search(comment)
        out.append(Command(start, text.strip(), int(m["rc"]) if m else 0))
    return out


def blocks(repo: Path, docs=DOCS) -> list[Block]:
    found: list[Block] = []
    for doc in docs:
        lines = (repo / doc).read_text().splitlines()
        i = 0
        while i < len(lines):
            fence = re.match(r"^```(\S*)", lines[i])
            if not fence:
                i += 1
                continue
            lang = fence.group(1)
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            before = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
            skip = SKIP.search(before)
            block = Block(doc, i + 1, lang, "\n".join(lines[i + 1:j]), skip["why"] if skip else None)
            if lang in SHELLS:
                block.commands = commands_of(block.source, i + 2)
            found.append(block)
            i = j + 1
    return found


def script(block: Block) -> str:
    """The block as one bash script that stops at the first command whose exit status is not the announced one."""
    out = ["set -u -o pipefail",
           '__want() { local rc=$1 want=$2 line=$3; if [ "$rc" != "$want" ]; then '
           'echo "README-TEST: line $line exited $rc, the text announces $want" >&2; exit 97; fi; }']
    for c in block.commands:
        out.append(c.text)
        out.append(f"__want $? {c.expect} {c.line}")
    return "\n".join(out) + "\n"
