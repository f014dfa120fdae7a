"""python -m compliance merge OUT_DIR SHARD.json... | validate FILE...

merge: the shards' results.json files into OUT_DIR/results.json and OUT_DIR/summary.html (one
self-contained page), a summary on stdout (and appended to $GITHUB_STEP_SUMMARY when set), and
one exit status, the worst of the shards': 1 > 6 > 0.
validate: each file against results.schema.json; exit 0 when all conform.
Bad input (a missing or foreign file, overlapping shards): one line on stderr, exit 4.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from common import files

from . import summary
from .merge import MergeError, merge_files
from .results import ResultsError, validate

EXIT_USAGE = 4


class _Parser(argparse.ArgumentParser):
    def error(self, message):        # one line and the suite's usage status, not argparse's 2
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m compliance", description="twotier results: merge shards, validate files")
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("merge", help="merge shards' results.json into one results.json, summary.html and exit status")
    m.add_argument("out_dir", type=Path, help="folder for results.json and summary.html")
    m.add_argument("shards", type=Path, nargs="+", help="the shards' results.json files")
    v = sub.add_parser("validate", help="check results.json files against the schema")
    v.add_argument("paths", type=Path, nargs="+")
    args = parser.parse_args(argv)
    try:
        if args.command == "validate":
            return _validate(args.paths)
        return _merge(args.out_dir, args.shards)
    except (MergeError, ResultsError, files.FileError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _merge(out_dir: Path, shards: list[Path]) -> int:
    merged = merge_files(shards)
    page, text = summary.html_page(merged), merged.dumps()      # everything made before anything is written
    files.write_atomic(out_dir / "results.json", text)
    files.write_atomic(out_dir / "summary.html", page)
    print(f"merged {len(shards)} shard(s), {len(merged.environments)} environment(s), {len(merged.records)} records "
          f"into {out_dir}/results.json and {out_dir}/summary.html")
    for env in merged.environments:
        data = env.to_json([r for r in merged.records if r.environment == env.key])
        print(f"  {summary.one_line(env.key)}: exit {data['exit_status']}"
              + (f" (could not check: {summary.one_line(env.error, 300)})" if env.error else ""))
    print(f"verdict: {summary.verdict_line(merged.run.exit_status)}")
    step = os.environ.get("GITHUB_STEP_SUMMARY")
    if step:
        files.append_text(Path(step), summary.markdown_summary(merged))
    return merged.run.exit_status


def _validate(paths: list[Path]) -> int:
    bad = 0
    for p in paths:
        errors = validate(files.read_json(p))
        for e in errors[:20]:
            print(f"{p}: {summary.one_line(e, 300)}")
        bad += bool(errors)
        if not errors:
            print(f"{p}: conforms to the schema")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
