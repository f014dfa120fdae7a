"""Import the run's ASFF findings into AWS Security Hub, run after run into the same findings.

Per account and region (a fleet spans several; a single run is one):
1. GetFindings: this tool's ACTIVE findings there (our product ARN, GeneratorId "twotier/") for
   the run's environments. Filters are sent, and applied again here: moto ignores them.
2. BatchImportFindings, 100 a call (the API's limit): the run's findings, and, for every finding
   Security Hub still holds active whose check holds now, that finding archived (Compliance
   PASSED), so a fix is archived even without a baseline. Findings it refuses are reported.
3. BatchUpdateFindings for what BatchImportFindings can't change on an existing finding (its
   Workflow and Note belong to the customer): a newly waived finding is SUPPRESSED with the
   waiver's reason as its Note; one this tool suppressed whose waiver expired is NEW again. A
   suppression someone made by hand is left alone.
Nothing here raises for an API failure: it is reported in the outcome (results.json, terminal,
step summary); the exit status stays the verdicts'.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .asff import GENERATOR_PREFIX, WAIVER_NOTE_BY, finding, finding_id, findings, product_arn
from .results import HOLDS, VIOLATED, WAIVED, Results
from .text import one_line

BATCH = 100


@dataclass
class Outcome:
    region: str
    account: str
    sent: int = 0
    imported: int = 0
    archived: int = 0
    suppressed: int = 0
    reopened: int = 0
    failed: list[dict] = field(default_factory=list)      # {"Id", "ErrorCode", "ErrorMessage"}
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"region": self.region, "account": self.account, "sent": self.sent, "imported": self.imported,
                "archived": self.archived, "suppressed": self.suppressed, "reopened": self.reopened,
                "failed": self.failed, "errors": self.errors}

    def lines(self) -> list[str]:
        head = (f"Security Hub {self.account} {self.region}: {self.imported} of {self.sent} findings imported "
                f"({self.archived} archived as fixed), {self.suppressed} suppressed by a waiver, {self.reopened} "
                f"reopened (waiver expired)")
        out = [head]
        out += [f"  refused {one_line(f.get('Id'))}: {one_line(f.get('ErrorCode'))} {one_line(f.get('ErrorMessage'), 300)}"
                for f in self.failed]
        out += [f"  error: {one_line(e, 400)}" for e in self.errors]
        return out


def _error(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        err = response["Error"]
        return f"{err.get('Code')}: {one_line(err.get('Message'), 300)}"
    return one_line(exc, 300) or type(exc).__name__


def existing(client, arn: str, environments: set[str]) -> dict[str, dict]:
    """This tool's ACTIVE findings for these environments, by Id."""
    filters = {"ProductArn": [{"Value": arn, "Comparison": "EQUALS"}],
               "GeneratorId": [{"Value": GENERATOR_PREFIX, "Comparison": "PREFIX"}],
               "RecordState": [{"Value": "ACTIVE", "Comparison": "EQUALS"}]}
    out = {}
    for page in client.get_paginator("get_findings").paginate(Filters=filters, PaginationConfig={"PageSize": 100}):
        for f in page.get("Findings", []):
            if (f.get("ProductArn") == arn and str(f.get("GeneratorId", "")).startswith(GENERATOR_PREFIX)
                    and f.get("RecordState") == "ACTIVE"
                    and f.get("ProductFields", {}).get("twotier/environment") in environments):
                out[f["Id"]] = f
    return out


def publish(results: Results, client_for: Callable[[str], object], account_fallback: str | None = None) -> list[Outcome]:
    found, _ = findings(results, account_fallback)
    envs = {e.key: e for e in results.environments}
    groups: dict[tuple[str, str], list[dict]] = {}
    for f in found:
        region = f["ProductArn"].split(":")[3]
        groups.setdefault((f["AwsAccountId"], region), []).append(f)
    # Every environment of the run has a group, so fixes are archived where nothing fails any more.
    for env in envs.values():
        account = env.account or account_fallback
        if account and env.region:
            groups.setdefault((account, env.region), [])
    holding = {finding_id(r.environment, r.check_id): r for r in results.records if r.verdict == HOLDS}
    outcomes = []
    for (account, region), batch in sorted(groups.items()):
        outcome = Outcome(region, account)
        outcomes.append(outcome)
        try:
            client = client_for(region)
            arn = product_arn(region, account)
            mine = {k for k, e in envs.items() if (e.account or account_fallback) == account and e.region == region}
            before = existing(client, arn, mine)
        except Exception as exc:  # noqa: BLE001 - any failure to reach Security Hub is reported, never fatal
            outcome.errors.append(f"GetFindings: {_error(exc)}")
            continue
        sent_ids = {f["Id"] for f in batch}
        for fid in before:
            record = holding.get(fid)
            if record is not None and fid not in sent_ids:
                batch.append(finding(record, envs[record.environment], account, results.run.id, results.run.ended_at))
        _import(client, batch, outcome)
        _workflow(client, batch, before, outcome)
    return outcomes


def _import(client, batch: list[dict], outcome: Outcome) -> None:
    outcome.sent = len(batch)
    for i in range(0, len(batch), BATCH):
        chunk = batch[i:i + BATCH]
        try:
            answer = client.batch_import_findings(Findings=chunk)
        except Exception as exc:  # noqa: BLE001 - reported per chunk; the next chunk may still go through
            outcome.errors.append(f"BatchImportFindings ({len(chunk)} findings): {_error(exc)}")
            continue
        refused = answer.get("FailedFindings", [])
        outcome.failed += [{"Id": f.get("Id", ""), "ErrorCode": f.get("ErrorCode", ""),
                            "ErrorMessage": f.get("ErrorMessage", "")} for f in refused]
        refused_ids = {f.get("Id") for f in refused}
        outcome.imported += answer.get("SuccessCount", len(chunk) - len(refused))
        outcome.archived += sum(1 for f in chunk if f["RecordState"] == "ARCHIVED" and f["Id"] not in refused_ids)


def _workflow(client, batch: list[dict], before: dict[str, dict], outcome: Outcome) -> None:
    """Suppress existing findings newly waived; reopen those this tool suppressed whose waiver ended."""
    updates: dict[tuple[str, str], list[dict]] = {}
    for f in batch:
        old = before.get(f["Id"])
        if old is None:
            continue          # created just now: its Workflow and Note came with it
        verdict = f["ProductFields"]["twotier/verdict"]
        old_status = old.get("Workflow", {}).get("Status")
        if verdict == WAIVED and old_status != "SUPPRESSED":
            updates.setdefault(("SUPPRESSED", f["Note"]["Text"]), []).append(f)
        elif (verdict == VIOLATED and old_status == "SUPPRESSED"
              and old.get("Note", {}).get("UpdatedBy") == WAIVER_NOTE_BY):
            updates.setdefault(("NEW", "waiver expired: a violation again"), []).append(f)
    for (status, note), found in updates.items():
        for i in range(0, len(found), BATCH):
            chunk = found[i:i + BATCH]
            try:
                answer = client.batch_update_findings(
                    FindingIdentifiers=[{"Id": f["Id"], "ProductArn": f["ProductArn"]} for f in chunk],
                    Workflow={"Status": status}, Note={"Text": note, "UpdatedBy": WAIVER_NOTE_BY})
            except Exception as exc:  # noqa: BLE001 - reported; the findings themselves were imported
                outcome.errors.append(f"BatchUpdateFindings (Workflow {status}, {len(chunk)} findings): {_error(exc)}")
                continue
            done = len(answer.get("ProcessedFindings", []))
            for u in answer.get("UnprocessedFindings", []):
                outcome.failed.append({"Id": u.get("FindingIdentifier", {}).get("Id", ""),
                                       "ErrorCode": u.get("ErrorCode", ""), "ErrorMessage": u.get("ErrorMessage", "")})
            if status == "SUPPRESSED":
                outcome.suppressed += done
            else:
                outcome.reopened += done

