"""Removes an environment in the order of kinds.py: what is ours by proof, each after its tags are checked.

Ours by proof: named by the environment's ledger (ledger.py: every ID the moment AWS returned it),
or tagged with a RunId the ledger knows (every `up` writes its own before it creates anything). A
resource is deleted only if it is ours by proof AND still carries our Project tag and this
environment's Env tag. So:
- a resource tagged Project and Env like ours that the ledger doesn't know (another team's, or one
  built from another state folder) is listed and kept, unless `include_tagged` says so (`down
  --include-tagged`; `sweep`, the tool for environments we have no ledger for, always does);
- a resource the ledger names that no longer carries our tags (someone changed its Env) is not
  deleted, and it is reported as left, with the reason: `down` never says "nothing left", and never
  drops the ledger, while such a resource exists.
A rollback passes `only`: a test of (kind, id, tags) that holds for what this very process
created (provisioner.made_here), so nothing that was there before it is touched.

EC2 answers a teardown as it answers anyone, and the teardown is written for those answers:
- Eventual consistency (AWS: "Eventual consistency in the Amazon EC2 API"). Right after its create
  call an ID can be "not found", which then does not mean it is gone: for an ID the target just
  created (`Target.recent`), its session retries a NotFound with backoff up to the target's
  consistency_timeout (awsenv/retries.py), and it is never taken as "already gone"; if it never
  shows, it is reported as possibly left. A create call that got no answer (an interrupt, a 5xx after the call) may have
  made something only its RunId tag can find: the teardown then waits the target's
  consistency_window before it trusts a listing, and makes a second pass if a later listing shows more.
- Instances go through shutting-down, NAT gateways through deleting, and their network interfaces
  outlive them for a while, holding security groups, subnets, the VPC and public addresses
  (DependencyViolation). The teardown waits for the instances and NAT gateways with its own
  checks (botocore's instance_terminated waiter FAILS on `pending` and `stopping`, exactly what an
  `up` interrupted right after RunInstances leaves), then for their network interfaces to go; the
  target's session retries DependencyViolation with backoff, all deletes of a pass sharing the
  target's dependency_timeout (`Retries.waiting_out_dependencies`, awsenv/retries.py).
- One failure stops nothing: every step is tried, each failure is said once, and what is left is
  listed at the end (billed kinds first).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from botocore.exceptions import ClientError

from common.display import for_terminal

from .. import consistency, statedir
from ..errors import EnvError
from ..settings import Settings
from ..targets import Target
from ..waits import wait_for
from . import kinds, tags
from .ledger import Ledger


@dataclass
class Leftovers:
    items: list[tuple[str, str]] = field(default_factory=list)       # ours by proof, still there
    unconfirmed: set[tuple[str, str]] = field(default_factory=set)   # made here, never seen: may exist
    moved: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, id, why): the ledger's, no longer tagged ours
    kept: list[tuple[str, str]] = field(default_factory=list)        # tagged like ours, not ours by proof
    region: str | None = None                                        # where they bill (the cost notes)

    def __bool__(self):
        """Something this environment made is still there."""
        return bool(self.items or self.moved)

    def lines(self) -> list[str]:
        out = []
        for k, i in kinds.billed_first(self.items):
            line = f"{k} {i} LEFT BEHIND{kinds.cost_note(k, self.region)}" if k in kinds.BILLED else f"{k} {i} left behind"
            if (k, i) in self.unconfirmed:
                line += " (created by this run but never visible to the API afterwards: check it)"
            out.append(line)
        why = {(k, i): w for k, i, w in self.moved}
        for k, i in kinds.billed_first(list(why)):
            out.append(f"{k} {i} LEFT BEHIND{kinds.cost_note(k, self.region)}: this environment's ledger names it, but "
                       f"{why[(k, i)]}, so it was not deleted (restore the tag and run down again, or remove it "
                       f"yourself if it is no longer yours)")
        return out

    def kept_lines(self, env: str) -> list[str]:
        return [f"{k} {i} kept{kinds.cost_note(k, self.region)}: tagged Project={tags.PROJECT} Env={env}, but not in this "
                f"environment's ledger nor made by a run it knows (another team's, or built from another state "
                f"folder); `down --include-tagged` removes it too" for k, i in kinds.billed_first(self.kept)]


@dataclass
class Found:
    """What a listing and the ledger say about the environment."""
    ours: dict[str, list[str]]                       # kind -> ids: ours by proof, tagged ours: to delete
    moved: list[tuple[str, str, str]] = field(default_factory=list)
    unproven: list[tuple[str, str]] = field(default_factory=list)

    def __bool__(self):
        return any(self.ours.values())


def why_not_ours(tag_list: list[dict] | None, env: str) -> str:
    """Why a resource's tags no longer say it belongs to the environment, for a person to read."""
    project, now = tags.value(tag_list, "Project"), tags.value(tag_list, "Env")
    if project != tags.PROJECT:
        return (f"its Project tag is now {for_terminal(project, 40)}" if project is not None
                else f"it does not carry Project={tags.PROJECT} now")
    return f"its Env tag is now {for_terminal(now, 40)}" if now is not None else "it does not carry an Env tag now"


Only = Callable[[str, str, list[dict]], bool]


def find_env(target: Target, env: str, ledger: Ledger, only: Only | None = None,
             unconfirmed: set[tuple[str, str]] | None = None, include_tagged: bool = False) -> Found:
    """The environment by kind: what is ours by proof (the ledger names it, or it carries a RunId
    the ledger knows; `only` and `include_tagged` are proof of their own) and tagged Project and Env
    (checked on our side too, since moto ignores some tag filters). Also what the ledger names that
    no longer carries our tags (`moved`), and what is tagged like ours without proof (`unproven`).
    A ledger entry the target just created is looked up until it shows (its session retries the
    NotFound within the target's consistency_timeout); one that never does is added to
    `unconfirmed` (and to the result, when `unconfirmed` is given)."""
    ec2, recent = target.ec2, target.recent
    found = Found({k.name: [] for k in kinds.KINDS})
    keep = only or (lambda kind, rid, tag_list: True)
    named = set(ledger.entries())
    runs = ledger.runs()
    for kind in kinds.KINDS:
        # A listing showing an ID doesn't say that calls naming it will find it: EC2's reads and
        # writes propagate apart, and a delete's NotFound right after the create is "not yet", not "gone".
        for rid, tag_list in kind.listing(ec2, tags.env_filter(env)):
            if not (tags.is_ours(tag_list, env) and keep(kind.name, rid, tag_list)):
                continue
            if (include_tagged or only is not None or (kind.name, rid) in named
                    or tags.value(tag_list, tags.RUN_ID) in runs):
                found.ours[kind.name].append(rid)
            else:
                found.unproven.append((kind.name, rid))
    for kind_name, rid in sorted(named, key=lambda e: [k.name for k in kinds.KINDS].index(e[0])):
        if rid in found.ours[kind_name]:
            continue
        if recent.is_fresh(rid):
            try:
                hits = kinds.BY_NAME[kind_name].lookup(ec2, rid)
            except ClientError as exc:
                if consistency.error_code(exc) in consistency.NOT_FOUND_AFTER_CREATE:
                    recent.gave_up(rid)     # waited its consistency_timeout: not waited for again
                    if unconfirmed is not None:
                        unconfirmed.add((kind_name, rid))
                        found.ours[kind_name].append(rid)
                continue
        else:
            hits = kinds.lookup(ec2, kind_name, rid)
        if any(tags.is_ours(t, env) and keep(kind_name, rid, t) for _, t in hits):
            found.ours[kind_name].append(rid)
        elif hits and only is None:
            found.moved.append((kind_name, rid, why_not_ours(hits[0][1], env)))
    # What this process just made and no listing has shown yet, whose ID the ledger may have missed
    # (an interrupt between the create call's answer and the ledger's write): looked up by its ID
    # (a NotFound meanwhile is "not yet", retried by the session), ours when its tags say so.
    for rid in recent.unseen():
        made = kinds.kind_of(rid)
        if made is None or rid in found.ours[made] or (made, rid) in named:
            continue
        if any(tags.is_ours(t, env) and keep(made, rid, t) for _, t in kinds.lookup(ec2, made, rid)):
            found.ours[made].append(rid)
    return found


class _Pass:
    """One teardown pass: what kinds.py's rows call (kinds.Pass), failures kept and said, the teardown
    carries on. (Its retries are the target session's, within one dependency deadline for the pass:
    awsenv/retries.py.)"""

    def __init__(self, target: Target, progress):
        self.t = target
        self.ec2 = target.ec2
        self.say = progress
        self.problems: list[str] = []
        self.notes: dict = {}

    def call(self, what: str, fn, resource_id: str, gone: Callable[[str], bool] = kinds.nothing_there,
             **kwargs) -> bool:
        """One deleting call; True when it is done (or there was nothing to do: `gone(code)`), False
        when it failed (said, remembered, and the teardown carries on)."""
        try:
            fn(**kwargs)
            return True
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code = err.get("Code", "")
            # Right after its create call a NotFound means "not yet" (retried until the deadline), never "gone".
            if gone(code) and not (self.t.recent.is_fresh(resource_id) and code in consistency.NOT_FOUND_AFTER_CREATE):
                return True
            waited = f" (still, after {self.t.dependency_timeout:.0f}s of retries)" if code in consistency.DEPENDENCY else ""
            self._problem(f"could not {what}: {code}: {err.get('Message')}{waited}")
            return False

    def read(self, what: str, fn, key: str, **kwargs) -> list[dict]:
        """A describe call for the teardown's own bookkeeping: [] (and said) when it fails."""
        try:
            return fn(**kwargs)[key]
        except ClientError as exc:
            self._problem(f"could not {what}: {consistency.error_code(exc)}: {exc.response['Error'].get('Message')}")
            return []

    def _problem(self, line: str) -> None:
        self.problems.append(line)
        self.say(f"  {line}")

    def wait(self, stages: list[kinds.Stage]) -> None:
        for checks, timeout_note in stages:
            if not checks:
                continue
            try:
                wait_for(checks, self.say, delay=self.t.poll_delay, first_delay=self.t.retry_first)
            except EnvError as exc:
                self._problem(f"{exc}; {timeout_note}")


def _wait_for_listings(target: Target, progress) -> None:
    """A create call of this process got no answer: what it made carries our tags but not yet, maybe,
    in a listing (eventual consistency). Wait until a listing can show it."""
    since = target.recent.in_doubt_since()
    if since is None:
        return
    wait = since + target.consistency_window - time.monotonic()
    if wait > 0:
        progress(f"a create call may have made more than its answer said (no answer, or a 5xx and a retry); "
                 f"waiting {wait:.1f}s so that listings show it")
        time.sleep(wait)


def down(target: Target, settings: Settings, progress=print, only: Only | None = None,
         include_tagged: bool = False) -> Leftovers:
    """Remove the environment (or, with `only`, just those of its resources); returns what is left."""
    ledger = Ledger(settings.state_dir)
    _wait_for_listings(target, progress)
    unconfirmed: set[tuple[str, str]] = set()
    found = find_env(target, settings.env, ledger, only, unconfirmed, include_tagged)
    if not found:
        progress(f"env {settings.env}: nothing of it to remove")
        if only is None and not found.moved:
            ledger.clear()
            statedir.forget_after_down(settings, progress)
        return Leftovers(moved=found.moved, kept=found.unproven, region=settings.region)

    seen = {(k, i) for k, ids in found.ours.items() for i in ids}
    problems = _remove(target, found.ours, progress)
    left = leftovers(target, settings, only, unconfirmed, include_tagged)
    late = [(k, i) for k, i in left.items if (k, i) not in seen]
    if late:
        # Shown by a later listing only (an answer lost to an interrupt or a 5xx): one more pass.
        progress(f"found {len(late)} more: {', '.join(i for _, i in late)}")
        again: dict[str, list[str]] = {k.name: [] for k in kinds.KINDS}
        for k, i in left.items:
            again[k].append(i)
        problems += _remove(target, again, progress)
        left = leftovers(target, settings, only, unconfirmed, include_tagged)
    if left.items and problems:
        progress(f"env {settings.env}: {len(problems)} step(s) failed; left: {', '.join(i for _, i in left.items)}")
    if only is None:
        # The hosts are gone: their pinned keys must not fail the next environment that gets the
        # same addresses (Elastic IPs and private IPs are reused).
        from ..hosts.ssh import forget_pins

        forget_pins(settings)
        if not left:
            ledger.clear()
            statedir.forget_after_down(settings, progress)
    return left


def _remove(target: Target, found: dict[str, list[str]], progress) -> list[str]:
    """Delete what `found` names, row by row of kinds.KINDS; returns the failures, one line each."""
    p = _Pass(target, progress)
    with target.retries.waiting_out_dependencies(target.dependency_timeout):
        waits: list[kinds.Stage] = []       # of consecutive rows that settle: one wait per stage
        for kind in kinds.KINDS:
            if waits and kind.settle is None:
                p.wait(waits)
                waits = []
            ids = found.get(kind.name, [])
            if ids and kind.before_delete:
                ids = kind.before_delete(p, ids)
            deleted = [rid for rid in ids if kind.delete(p, rid)]
            if deleted and kind.settle:
                for n, (checks, note) in enumerate(kind.settle(p, deleted)):
                    if n < len(waits):
                        waits[n][0].update(checks)
                    else:
                        waits.append((dict(checks), note))
        p.wait(waits)
    return p.problems


def leftovers(target: Target, settings: Settings, only: Only | None = None,
              unconfirmed: set[tuple[str, str]] | None = None, include_tagged: bool = False) -> Leftovers:
    """What of the environment is still there (and, with `unconfirmed`, what this run made and never saw)."""
    found = find_env(target, settings.env, Ledger(settings.state_dir), only, include_tagged=include_tagged)
    items = [(k.name, i) for k in kinds.KINDS for i in found.ours.get(k.name, [])]
    never_seen = {(k, i) for k, i in (unconfirmed or set())}
    items += sorted(never_seen - set(items))
    return Leftovers(items, never_seen, found.moved, found.unproven, settings.region)
