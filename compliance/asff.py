"""Findings in the AWS Security Finding Format (ASFF 2018-10-08), for Security Hub and anyone else.

One finding per environment x check that is violated, not checked, or waived, plus, where a
baseline says a finding was fixed, that finding archived. The required attributes (SchemaVersion,
Id, ProductArn, GeneratorId, AwsAccountId, Types, CreatedAt, UpdatedAt, Severity, Title,
Description, Resources) and Compliance, RecordState, Workflow:

| verdict | Compliance.Status | RecordState | Workflow.Status (on creation) | Severity |
| violated | FAILED | ACTIVE | NEW | HIGH (article), MEDIUM (hardening) |
| not checked | NOT_AVAILABLE | ACTIVE | NEW | LOW |
| waived | FAILED | ACTIVE | SUPPRESSED, Note: the reason and expiry | as violated |
| fixed (holds, was a finding) | PASSED | ARCHIVED | - | INFORMATIONAL |

The Id is stable: "twotier-" + sha256 of the environment key and the check id, so the same
environment and check update one finding run after run. CreatedAt is when the finding was first
seen (history's `since`), UpdatedAt this run's end (Security Hub ignores an update whose
UpdatedAt is not later). Severity and Types are also given in FindingProviderFields, which is
where a finding provider updates them. Text from the API is data: control characters and
newlines are neutralised, lengths kept within ASFF's limits.
"""
from __future__ import annotations

import hashlib

from .results import ENVIRONMENT_CHECK, HOLDS, NOT_CHECKED, VIOLATED, WAIVED, Environment, Record, Results
from .text import one_line

SCHEMA_VERSION = "2018-10-08"
PRODUCT_NAME = "twotier"
WAIVER_NOTE_BY = "twotier-waivers"     # Note.UpdatedBy of a suppression this tool made (securityhub.py)
ARTICLE_TYPE = "Software and Configuration Checks/Industry and Regulatory Standards/twotier article"
HARDENING_TYPE = "Software and Configuration Checks/AWS Security Best Practices"
GENERATOR_PREFIX = "twotier/"


def finding_id(environment: str, check_id: str) -> str:
    return "twotier-" + hashlib.sha256(f"{environment}\n{check_id}".encode()).hexdigest()


def partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    if region.startswith("us-iso"):
        return "aws-iso-b" if region.startswith("us-isob") else "aws-iso"
    return "aws"


def product_arn(region: str, account: str) -> str:
    """The account's own product ("default"): what a custom integration imports into."""
    return f"arn:{partition(region)}:securityhub:{region}:{account}:product/{account}/default"


def _resource(env: Environment, region: str, account: str) -> dict:
    if env.vpc_id:
        return {"Type": "AwsEc2Vpc", "Id": f"arn:{partition(region)}:ec2:{region}:{account}:vpc/{env.vpc_id}",
                "Partition": partition(region), "Region": region}
    return {"Type": "Other", "Id": one_line(env.key, 512), "Partition": partition(region), "Region": region}


def _severity(record: Record) -> str:
    if record.verdict == HOLDS:
        return "INFORMATIONAL"
    if record.verdict == NOT_CHECKED:
        return "LOW"
    return "MEDIUM" if record.property.startswith("H:") else "HIGH"


def finding(record: Record, env: Environment, account: str, run_id: str, updated_at: str) -> dict:
    region = env.region or "us-east-1"
    fixed = record.verdict == HOLDS
    since = (record.history or {}).get("since") or {}
    created = since.get("time") or record.time
    types = [HARDENING_TYPE if record.property.startswith("H:") else ARTICLE_TYPE]
    severity = {"Label": _severity(record), "Original": record.verdict}
    what = f"{record.property} {record.title}".strip() if record.title else record.property
    if record.check_id == ENVIRONMENT_CHECK:
        what = "could not be checked"
    status = {VIOLATED: "FAILED", WAIVED: "FAILED", NOT_CHECKED: "NOT_AVAILABLE", HOLDS: "PASSED"}[record.verdict]
    message = record.message or ("holds again" if fixed else record.verdict)
    product_fields = {
        "twotier/environment": one_line(record.environment, 2048),
        "twotier/check": one_line(record.check_id, 2048),
        "twotier/property": one_line(record.property, 2048),
        "twotier/verdict": record.verdict,
        "twotier/run": run_id,
    }
    if record.evidence_sha256:
        product_fields["twotier/evidence-sha256"] = record.evidence_sha256
    out: dict = {
        "SchemaVersion": SCHEMA_VERSION,
        "Id": finding_id(record.environment, record.check_id),
        "ProductArn": product_arn(region, account),
        "ProductName": PRODUCT_NAME,
        "CompanyName": PRODUCT_NAME,
        "GeneratorId": one_line(GENERATOR_PREFIX + record.check_id, 512),
        "AwsAccountId": account,
        "Types": types,
        "FirstObservedAt": created,
        "LastObservedAt": record.time,
        "CreatedAt": created,
        "UpdatedAt": updated_at,
        "Severity": severity,
        "Title": one_line(f"{env.name}: {what}", 256),
        "Description": one_line(f"{record.verdict}: {message}", 1024),
        "Resources": [_resource(env, region, account)],
        "Compliance": {"Status": status, "RelatedRequirements": [one_line(f"twotier {record.property}", 256)]},
        "RecordState": "ARCHIVED" if fixed else "ACTIVE",
        "FindingProviderFields": {"Severity": severity, "Types": types},
        "ProductFields": product_fields,
    }
    if not fixed:
        out["Workflow"] = {"Status": "SUPPRESSED" if record.verdict == WAIVED else "NEW"}
    if record.verdict == WAIVED and record.waiver:
        out["Note"] = {"Text": one_line(waiver_note(record.waiver), 512), "UpdatedBy": WAIVER_NOTE_BY,
                       "UpdatedAt": updated_at}
    return out


def waiver_note(waiver: dict) -> str:
    return f"waived until {waiver['expires']} ({waiver['id']}): {waiver['reason']}"


def exported(results: Results) -> list[Record]:
    """The records that become findings: violated, not checked, waived, and fixed ones."""
    return [r for r in results.records
            if r.verdict in (VIOLATED, NOT_CHECKED, WAIVED) or (r.history or {}).get("status") == "fixed"]


def findings(results: Results, account_fallback: str | None = None) -> tuple[list[dict], list[str]]:
    """(the run's findings, a line per environment left out for want of an account ID)."""
    envs = {e.key: e for e in results.environments}
    out, left_out = [], []
    records = exported(results)
    # An environment that could not be checked at all is one finding of its own.
    for env in results.environments:
        if env.error:
            records.append(Record(env.key, ENVIRONMENT_CHECK, "environment", "the environment can be read",
                                  NOT_CHECKED, env.error, results.run.ended_at))
    for r in records:
        env = envs.get(r.environment) or Environment(r.environment, r.environment)
        account = env.account or account_fallback
        if not account:
            if env.key not in left_out:
                left_out.append(env.key)
            continue
        out.append(finding(r, env, account, results.run.id, results.run.ended_at))
    return out, [f"{k}: no account ID known, so no ASFF finding" for k in left_out]
