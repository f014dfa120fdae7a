"""One result, four readers: terminal lines, a CI step summary (Markdown), a section of the HTML
report, and the merge command's own page. Every string that came from the API or a check is data:
one_line() for the terminal, markdown() for Markdown, html() for HTML.
"""
from __future__ import annotations

from . import waivers as waivers_
from .history import FIXED, NEW, STILL_FAILING
from .results import (
    ACCEPTED,
    ADVISORY,
    HOLDS,
    NOT_APPLICABLE,
    NOT_CHECKED,
    VIOLATED,
    WAIVED,
    Record,
    Results,
)
from .text import html, markdown, markdown_code, one_line

LABELS = {HOLDS: "holds", VIOLATED: "violated", NOT_CHECKED: "not checked", NOT_APPLICABLE: "not applicable",
          ACCEPTED: "accepted", ADVISORY: "advisory", WAIVED: "waived"}
EXIT_MEANING = {0: "every checked property holds", 1: "out of compliance (a property is violated)",
                6: "nothing violated, but something could not be checked"}
COUNTED = (HOLDS, VIOLATED, NOT_CHECKED, WAIVED, ADVISORY, ACCEPTED, NOT_APPLICABLE)


def check_name(check_id: str) -> str:
    return check_id.rsplit("::", 1)[-1]


def since_text(record: Record) -> str:
    since = (record.history or {}).get("since") or {}
    return f"since {since.get('time', '?')[:10]} (run {since.get('run_id', '?')})" if since else ""


def _by_status(results: Results, status: str) -> list[Record]:
    return [r for r in results.records if (r.history or {}).get("status") == status]


def sections(results: Results) -> list[tuple[str, list[Record]]]:
    """The findings in the order a reader wants them: new first, then still failing, fixed, waived."""
    return [("new", _by_status(results, NEW)), ("still failing", _by_status(results, STILL_FAILING)),
            ("fixed", _by_status(results, FIXED)), ("waived", results.of(WAIVED))]


def changed_otherwise(results: Results) -> list[Record]:
    """Verdicts that changed without being new, still failing or fixed: a finding no longer looked
    at (not applicable now), an advisory finding, a check the baseline didn't have."""
    return [r for r in results.records if r.history and not r.history["status"]
            and r.history["previous"] != r.verdict]


def verdict_line(code: int) -> str:
    return f"{EXIT_MEANING.get(code, 'the run did not finish')} (exit {code})"


def _waiver_text(record: Record) -> str:
    w = record.waiver or {}
    return f"{w.get('reason', '')} ({w.get('id', '?')}, until {w.get('expires', '?')})"


def _about(record: Record, with_env: bool) -> str:
    env = f"{record.environment} " if with_env else ""
    return f"{env}{record.property} {check_name(record.check_id)}"


# -- terminal ----------------------------------------------------------------------------------
def terminal_history(results: Results) -> list[str]:
    baselines = results.history.get("baselines", [])
    if not baselines:
        return []
    many = len(results.environments) > 1
    lines = ["compared with " + "; ".join(f"run {one_line(b['run_id'])} (ended {one_line(b['ended_at'])})"
                                         for b in baselines)]
    for title, found in sections(results)[:3]:
        lines.append(f"{title} ({len(found)})" + (":" if found else ""))
        for r in found:
            tail = {"new": r.message, "still failing": f"{since_text(r)}: {r.message}", "fixed": "holds now"}[title]
            lines.append(f"  {one_line(_about(r, many))}: {one_line(tail, 300)}")
    others = changed_otherwise(results)
    if others:
        lines.append(f"verdict changed otherwise ({len(others)}):")
        lines += [f"  {one_line(_about(r, many))}: {LABELS.get(str((r.history or {}).get('previous')), 'not in that run')} "
                  f"-> {LABELS[r.verdict]}" for r in others]
    if many:
        for key, env in results.history.get("environments", {}).items():
            lines.append(f"environment {one_line(key)}: {len(env['new'])} new, {len(env['still-failing'])} still "
                         f"failing, {len(env['fixed'])} fixed, {len(env['changed'])} verdicts changed")
    return lines


def terminal_waivers(results: Results) -> list[str]:
    section = results.waivers
    if not section:
        return []
    many = len(results.environments) > 1
    lines = []
    for r in results.of(WAIVED):
        lines.append(f"waived (not counted): {one_line(_about(r, many))}: {one_line(_waiver_text(r), 300)}")
    for r in expired(results):
        w = r.waiver or {}
        lines.append(f"waiver expired, violated again: {one_line(_about(r, many))}: {one_line(w.get('id'))} "
                     f"expired after {one_line(w.get('expires'))} ({one_line(w.get('reason'), 200)})")
    for e in waivers_.unused(section):
        lines.append(f"waiver {e['id']} waived nothing ({one_line(_names(e))}): {waivers_.explain(e)}")
    return lines


def expired(results: Results) -> list[Record]:
    """Violations whose waiver has expired: counted again, and saying so."""
    return [r for r in results.of(VIOLATED) if (r.waiver or {}).get("state") == waivers_.EXPIRED]


def _names(entry: dict) -> str:
    what = f"property {entry['property']}" if entry.get("property") else f"check {entry.get('check')}"
    return f"environment {entry['environment']}, {what}, until {entry['expires']}"


# -- Markdown (GitHub's step summary) ----------------------------------------------------------
def markdown_summary(results: Results) -> str:
    run = results.run
    out = [f"## twotier compliance: {markdown(verdict_line(run.exit_status))}", "",
           f"Run {markdown_code(run.id)} on {markdown(run.target)}, {len(results.environments)} environment(s).", "",
           "| environment | verdict | " + " | ".join(LABELS[v] for v in COUNTED) + " |",
           "|---|---|" + "---:|" * len(COUNTED)]
    grouped = results.by_environment()
    for env in results.environments:
        data = env.to_json(grouped.get(env.key, []))
        verdict = EXIT_MEANING.get(data["exit_status"], "?").split(" (")[0]
        if env.error:
            verdict = f"could not check: {env.error}"
        out.append(f"| {markdown(env.key)} | {markdown(verdict, 200)} (exit {data['exit_status']}) | "
                   + " | ".join(str(data["counts"][v]) for v in COUNTED) + " |")
    if results.history.get("baselines"):
        listed = sections(results)
    else:
        # Nothing to compare with: the findings as they are.
        out += ["", "No previous run to compare with (give --baseline or --history)."]
        listed = [("violated", results.of(VIOLATED)), ("not checked", results.of(NOT_CHECKED)),
                  ("waived", results.of(WAIVED))]
    for title, found in listed:
        if not found and title != listed[0][0]:
            continue
        out += ["", f"### {title.capitalize()} ({len(found)})"]
        if not found:
            out.append("None.")
        for r in found:
            tail = {"still failing": f"{since_text(r)}: {r.message}", "fixed": "holds now",
                    "waived": _waiver_text(r)}.get(title, r.message)
            out.append(f"- {markdown(r.environment)} **{markdown(r.property)}** {markdown_code(check_name(r.check_id))}: "
                       f"{markdown(tail, 400)}")
    unused = waivers_.unused(results.waivers) if results.waivers else []
    if unused:
        out += ["", f"### Waivers that waived nothing ({len(unused)})"]
        out += [f"- {markdown(e['id'])} ({markdown(_names(e))}): {markdown(waivers_.explain(e))}" for e in unused]
    for outcome in results.exports.get("security_hub", []):
        out += ["", "Security Hub: " + markdown(outcome_line(outcome))]
    return "\n".join(out) + "\n\n"


def outcome_line(o: dict) -> str:
    line = (f"{o['account']} {o['region']}: {o['imported']} of {o['sent']} findings imported, {o['archived']} "
            f"archived as fixed, {o['suppressed']} suppressed, {o['reopened']} reopened")
    if o["failed"]:
        line += f"; {len(o['failed'])} refused"
    if o["errors"]:
        line += "; errors: " + "; ".join(o["errors"])
    return line


# -- HTML ----------------------------------------------------------------------------------------
def _li(r: Record, tail: str, many: bool) -> str:
    env = f"{html(r.environment)} " if many else ""
    return (f'<li data-check="{html(r.check_id)}">{env}<b>{html(r.property)}</b> {html(check_name(r.check_id))}: '
            f"{html(one_line(tail, 600))}</li>")


def html_section(results: Results) -> str:
    """"Since the last run" and "Waivers": the report's small section (and part of the merge page)."""
    many = len(results.environments) > 1
    parts = ['<div id="tt-history"><h2>Since the last run</h2>']
    baselines = results.history.get("baselines", [])
    if not baselines:
        parts.append('<p class="tt-run">No previous run to compare with (give --baseline or --history).</p>')
    else:
        parts.append('<p class="tt-run">Compared with ' + "; ".join(
            f"run <code>{html(b['run_id'])}</code> (ended {html(b['ended_at'])})" for b in baselines) + ".</p>")
        for title, found in sections(results)[:3]:
            items = "".join(_li(r, {"new": r.message, "still failing": f"{since_text(r)}: {r.message}",
                                    "fixed": "holds now"}[title], many) for r in found) or "<li>none</li>"
            parts.append(f'<h3>{title.capitalize()} ({len(found)})</h3><ul class="tt-{title.replace(" ", "-")}">'
                         f"{items}</ul>")
    parts.append("</div>")
    if results.waivers:
        parts.append('<div id="tt-waivers"><h2>Waivers</h2><p class="tt-run">Waived violations are shown, not '
                     "counted in the exit status; an expired waiver makes its violation count again.</p><ul>")
        rows = [_li(r, "waived: " + _waiver_text(r), many) for r in results.of(WAIVED)]
        rows += [_li(r, f"waiver {(r.waiver or {}).get('id')} expired after {(r.waiver or {}).get('expires')}: "
                        "violated again", many) for r in expired(results)]
        rows += [f'<li class="tt-unused-waiver">waiver {html(e["id"])} ({html(_names(e))}) waived nothing: '
                 f"{html(waivers_.explain(e))}</li>" for e in waivers_.unused(results.waivers)]
        parts.append("".join(rows) or "<li>no waiver applied this run</li>")
        parts.append("</ul></div>")
    return "".join(parts)


PAGE_CSS = """body{font-family:sans-serif;color:#222;margin:20px}table{border-collapse:collapse;margin:8px 0 16px}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}td.n{text-align:right}
.tt-run{color:#444}.x1{background:#fde0e0}.x6{background:#eee}.x0{background:#e3f4e3}code{font-size:90%}"""


def html_page(results: Results) -> str:
    """The merge command's summary: self-contained, no script, every value escaped."""
    run = results.run
    grouped = results.by_environment()
    rows = []
    for env in results.environments:
        data = env.to_json(grouped.get(env.key, []))
        code = data["exit_status"]
        what = f"could not check: {env.error}" if env.error else EXIT_MEANING.get(code, "?")
        rows.append(f'<tr class="x{code}" id="env-{html(env.key)}"><td>{html(env.key)}</td><td>{html(env.name)}</td>'
                    f"<td>{html(env.region or '')}</td><td>{html(env.account or '')}</td><td>{html(env.vpc_id or '')}</td>"
                    f"<td>{html(what)} (exit {code})</td>"
                    + "".join(f'<td class="n">{data["counts"][v]}</td>' for v in COUNTED) + "</tr>")
    head = "".join(f"<th>{LABELS[v]}</th>" for v in COUNTED)
    findings = "".join(
        f'<tr><td>{html(r.environment)}</td><td>{html(r.property)}</td><td>{html(check_name(r.check_id))}</td>'
        f"<td>{html(LABELS.get(r.verdict, r.verdict))}</td><td>{html(one_line(r.message, 600))}</td></tr>"
        for r in results.records if r.verdict in (VIOLATED, NOT_CHECKED, WAIVED))
    shards = "".join(f"<li><code>{html(s['run_id'])}</code> {html(s.get('file') or '')}: exit {int(s['exit_status'])}</li>"
                     for s in run.shards)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>twotier compliance: '
            f"{html(verdict_line(run.exit_status))}</title><style>{PAGE_CSS}</style></head><body>"
            f'<h1>twotier compliance</h1><p class="tt-run" id="tt-outcome" data-exit="{run.exit_status}">'
            f"<b>{html(verdict_line(run.exit_status))}</b> · run <code>{html(run.id)}</code> · target "
            f"{html(run.target)} · {html(run.started_at)} to {html(run.ended_at)} · {len(results.environments)} "
            f"environment(s)</p>" + (f"<h2>Shards ({len(run.shards)})</h2><ul>{shards}</ul>" if shards else "")
            + f'<h2>Environments</h2><table id="tt-environments"><tr><th>environment</th><th>name</th><th>region</th>'
            f"<th>account</th><th>VPC</th><th>verdict</th>{head}</tr>{''.join(rows)}</table>"
            + html_section(results)
            + f'<h2>Findings</h2><table id="tt-findings"><tr><th>environment</th><th>property</th><th>check</th>'
            f"<th>verdict</th><th>message</th></tr>{findings}</table></body></html>\n")
