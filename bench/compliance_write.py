"""What writing the run's data costs for a fleet: N synthetic environments of one run each.

    .venv/bin/python bench/compliance_write.py [N ...]        (default: 1 10 100)

The N = 100 figures go to bench/figures.json (README's benchmark table).

Each environment has the suite's 49 checks as a check-only run on the aws target gives them
(27 hold, 21 not applicable, 1 accepted), two violated, one not checked, one waived; a baseline
run of the same fleet (other findings), and 10 waivers. Timed, each the median of 3: history
against the baseline, the waivers section, results.json written (temporary file + rename), the
Markdown step summary, the report's HTML section, the ASFF file, and merging the fleet back from
10 shards (read, merge, write results.json and summary.html). Figures, never asserted.
"""
from __future__ import annotations

import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compliance import asff, files, history, merge, summary, waivers  # noqa: E402
from compliance import results as res  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import figures as bench_figures  # noqa: E402 - bench/figures.py

CHECKS = 49


def fleet(n: int, started: str, broken: tuple[int, ...]) -> res.Results:
    envs, records = [], []
    for i in range(n):
        key = f"env{i:03d}@us-east-1"
        envs.append(res.Environment(key, f"env{i:03d}", "us-east-1", f"vpc-{i:017x}", "123456789012"))
        for c in range(CHECKS):
            verdict = res.HOLDS if c < 27 else res.NOT_APPLICABLE if c < 48 else res.ACCEPTED
            message = ""
            if c in broken:
                verdict, message = res.VIOLATED, f"expected 0.0.0.0/0 in rtb-{i:08x}, found only local"
            elif c == 5:
                verdict, message = res.NOT_CHECKED, "no route to 10.0.1.4"
            waiver = None
            if c == 6:
                verdict, message = res.WAIVED, "expected ICMP from the web server only"
                waiver = {"id": "W1", "state": "active", "reason": "monitoring moves", "expires": "2999-01-01"}
            records.append(res.Record(key, f"tests/test_{c // 10}_x.py::test_check_{c}", f"{c // 10 + 1}.{c % 10}",
                                      "a property of the article", verdict, message, started, True,
                                      "ab" * 32 if verdict != res.NOT_APPLICABLE else None, None, waiver))
    run = res.Run(res.new_run_id(res.parse_time(started)), started, started, "bench", "aws", 1)
    return res.Results(run, envs, records)


def timed(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench(n: int, tmp: Path) -> dict[str, float]:
    baseline = fleet(n, "2026-01-01T00:00:00.000Z", broken=(1, 3))
    now = fleet(n, "2026-01-02T00:00:00.000Z", broken=(1, 2))
    w = waivers.parse([{"environment": "*", "property": f"1.{k}", "reason": "r", "expires": "2999-01-01"}
                       for k in range(10)])
    names = {e.key: e.name for e in now.environments}
    out: dict[str, float] = {}

    def do_history():
        history.compare(now.records, baseline, now.run.id)
        now.history = history.summarise(now.records, [history.baseline_ref(baseline, "b.json")])
    out["history"] = timed(do_history)
    out["waivers"] = timed(lambda: setattr(now, "waivers", waivers.report(w, now.records, names, dt.date(2026, 1, 2),
                                                                          "w.yml")))
    out["results.json"] = timed(lambda: now.write(tmp / "results.json"))
    out["step summary"] = timed(lambda: summary.markdown_summary(now))
    out["report section"] = timed(lambda: summary.html_section(now))
    out["asff"] = timed(lambda: files.write_atomic(tmp / "asff.json", json.dumps(
        {"Findings": asff.findings(now)[0]}, indent=1)))
    # The data a run writes, end to end (what the plugin does after the checks).
    out["run total"] = sum(out.values())
    shards = []
    size = max(1, n // 10)
    for k in range(0, n, size):
        part = res.Results(now.run, now.environments[k:k + size],
                           [r for r in now.records if r.environment in {e.key for e in now.environments[k:k + size]}],
                           history.summarise([], []), {})
        part.write(tmp / f"shard{k}.json")
        shards.append(tmp / f"shard{k}.json")

    def do_merge():
        merged = merge.merge_files(shards)
        merged.write(tmp / "merged.json")
        files.write_atomic(tmp / "summary.html", summary.html_page(merged))
    out[f"merge of {len(shards)} shards"] = timed(do_merge)
    out["results.json MB"] = (tmp / "results.json").stat().st_size / 1e6
    return out


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or [1, 10, 100]
    with tempfile.TemporaryDirectory() as folder:
        for n in sizes:
            figures = bench(n, Path(folder))
            print(f"N = {n} environments ({n * CHECKS} records):")
            for name, value in figures.items():
                print(f"  {name:<22} {value:8.3f}" + ("" if name.endswith("MB") else " s"))
            if n == 100:
                total = figures["run total"]
                merge_key = next(k for k in figures if k.startswith("merge"))
                bench_figures.record("compliance_write_100", total,
                                     f"{n * CHECKS} records, a {figures['results.json MB']:.1f} MB results.json; "
                                     f"merging it back from 10 shards {figures[merge_key]:.2f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
