"""A run ledger on disk: every ID is written the moment AWS returns it, before anything else
happens, so `down` can clean up after a crash at any point even if tags never got written."""
from __future__ import annotations

import json
import os
from pathlib import Path


class Ledger:
    def __init__(self, state_dir: Path):
        self.path = state_dir / "ledger.jsonl"

    def record(self, kind: str, resource_id: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps({"kind": kind, "id": resource_id}) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def entries(self) -> list[tuple[str, str]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            try:
                e = json.loads(line)
                out.append((e["kind"], e["id"]))
            except (ValueError, KeyError):
                continue   # a line cut short by a crash
        return out

    def ids(self, kind: str) -> list[str]:
        return list(dict.fromkeys(i for k, i in self.entries() if k == kind))

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
