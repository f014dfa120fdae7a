"""The WSGI middleware: reads each EC2 Query API request, lets the rules that are on refuse it or
change what moto sees, calls moto, and lets them rewrite moto's answer. Everything that isn't EC2
passes through untouched."""
from __future__ import annotations

import io
import os
import random
import time
import xml.etree.ElementTree as ET
from urllib.parse import parse_qsl

from . import query as Q
from .config import ENV_COUNTS, Rates, Timings, rules_from_env
from .counts import Counts
from .errors import Ec2Error, error_response
from .gate import DEFAULT_BOUND, StateGate
from .memory import CREATED, INSTANCE_CALLS, LISTED, Memory
from .rules import REGISTRY, RULES, Rule, ZoneRules

MAX_BODY = 32 * 1024 * 1024


class RealismLayer:
    """The WSGI middleware; make one with `wrap()`."""

    def __init__(self, app, *, rules=None, timings: Timings | None = None, counts: Counts | None = None,
                 zone_rules: ZoneRules | None = None, rates: Rates | None = None, seed: int = 0,
                 clock=time.monotonic):
        self.app = app
        self.rules = frozenset(rules_from_env() if rules is None else rules)
        unknown = self.rules - set(RULES)
        if unknown:
            raise ValueError(f"unknown rule(s) {sorted(unknown)}")
        self.timings = timings or Timings.from_env()
        self.counts = counts or Counts(os.environ.get(ENV_COUNTS) or None)
        self.zone_rules = zone_rules or ZoneRules()
        self.rates = rates or Rates()
        self.random = random.Random(seed)   # the rates' draws: the same run draws the same answers
        self.clock = clock
        self.memory = Memory(self)
        self.state_gate: StateGate | None = None    # see hold_states_until
        # Every rule exists (one may ask another, e.g. which zones offer a type); only those that are
        # on answer.
        self._all: dict[str, Rule] = {cls.name: cls(self) for cls in REGISTRY}
        self._on: list[Rule] = [rule for name, rule in self._all.items() if name in self.rules]
        self._after_actions = frozenset().union(*(r.after_actions for r in self._on)) if self._on else frozenset()

    @property
    def enabled(self) -> bool:
        return bool(self.rules)

    def on(self, rule: str) -> bool:
        return rule in self.rules

    def rule(self, name: str) -> Rule:
        return self._all[name]

    def reset_state(self) -> None:
        """Forget everything the layer remembers (moto's /moto-api/reset does this too)."""
        self.memory.forget()
        for rule in self._all.values():
            rule.reset()

    def hold_states_until(self, reached, *, bound: float = DEFAULT_BOUND, log=print) -> None:
        """Show an instance's transitional state until `reached(instance_id, state, region)` says its
        machine is `running` / `stopped` / `terminated` (or `bound` seconds have passed; logged):
        for a server that also runs the instances (gate.py). Call it before serving."""
        self.state_gate = StateGate(reached, bound, log)

    def others_instances(self) -> set[str]:
        """The IDs of the instances "another team" runs (rule others-instances), since the last reset."""
        return self.rule("others-instances").ids()  # type: ignore[attr-defined]

    # -- WSGI ------------------------------------------------------------------------------------

    def __call__(self, environ, start_response):
        if not self.enabled:
            return self.app(environ, start_response)
        path = environ.get("PATH_INFO") or ""
        if path.startswith("/moto-api"):
            result = self.app(environ, start_response)
            if path.rstrip("/") == "/moto-api/reset" and environ.get("REQUEST_METHOD") == "POST":
                self.reset_state()
            return result
        req = self._read(environ)
        if req is None:
            return self.app(environ, start_response)
        try:
            self._before(req)
        except Ec2Error as err:
            self.counts.add(err.rule, req.action)
            status, headers, body = error_response(err)
            start_response(status, headers)
            return [body]
        status, headers, body = self.call(self._forward_environ(req))
        if status.startswith("200"):
            try:
                body = self._after(req, body)
            except ET.ParseError:
                pass  # not an XML answer: moto's, untouched
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        return [body]

    def _read(self, environ) -> Q.Request | None:
        """The EC2 Query API request in `environ`, or None for anything else (passed through)."""
        service, region, access_key = Q.credential_scope(environ.get("HTTP_AUTHORIZATION", ""))
        if service and service != "ec2":
            return None
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY:
            return None
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("wsgi.input_terminated", None)
        if method == "POST" and "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
            source = body.decode("utf-8", "replace")
        elif method == "GET":
            source = environ.get("QUERY_STRING", "")
        else:
            return None
        params = parse_qsl(source, keep_blank_values=True)
        values = dict(params)
        if "Action" not in values or (not service and values.get("Version") != "2016-11-15"):
            return None
        return Q.Request(environ, body, params, region or "us-east-1", Q.account(environ, access_key))

    def _forward_environ(self, req: Q.Request):
        if req.forward_params is None:
            return req.environ
        return Q.with_params(req.environ, req.forward_params)

    def call(self, environ) -> tuple[str, list, bytes]:
        """moto's answer to `environ`, whole (status, headers, body)."""
        captured: dict = {}
        chunks: list[bytes] = []

        def start_response(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, list(headers)
            return chunks.append

        result = self.app(environ, start_response)
        try:
            for chunk in result:
                chunks.append(chunk)
        finally:
            if hasattr(result, "close"):
                result.close()
        return captured["status"], captured["headers"], b"".join(chunks)

    def backend(self, req: Q.Request):
        from moto.ec2.models import ec2_backends

        return ec2_backends[req.account][req.region]

    # -- the rules ---------------------------------------------------------------------------------

    def _before(self, req: Q.Request) -> None:
        now = self.clock()
        for rule in self._on:
            rule.settle(req, now)
        for rule in self._on:
            rule.before(req, now)
        self.memory.before(req)

    def _after(self, req: Q.Request, body: bytes) -> bytes:
        action = req.action
        if not (action in CREATED or action in INSTANCE_CALLS or action in LISTED or action == "DeleteNatGateway"
                or action in self._after_actions):
            return body
        doc = Q.Doc(body)
        now = self.clock()
        self.memory.after(req, doc, now)
        for rule in self._on:
            if action in rule.after_actions:
                rule.after(req, doc, now)
        self.memory.listed(req, doc, now)
        return doc.bytes()


def wrap(app, *, enabled: bool | None = None, rules=None, timings: Timings | None = None,
         counts_path: str | os.PathLike | None = None, counts: Counts | None = None,
         zone_rules: ZoneRules | None = None, rates: Rates | None = None, seed: int = 0,
         clock=time.monotonic) -> RealismLayer:
    """Put the realism layer in front of moto's WSGI app (`DomainDispatcherApplication`).

    enabled   None: the switch decides (`TWOTIER_EMULATOR_REALISM`, on unless `off`); False: a
              pass-through; True: every rule (or `rules`).
    rules     the rule names to apply (default: the switch's, i.e. all of `RULES`).
    timings   the windows, in seconds (default `Timings()`, times `TWOTIER_EMULATOR_REALISM_SCALE`).
    counts_path  a JSON file the counts by rule are written to at every change, for another process
              (`read_counts(path)`); default `TWOTIER_EMULATOR_REALISM_COUNTS`, else none.
    rates     how often the answers EC2 gives only sometimes are given (default `Rates()`), drawn
              from a random generator seeded with `seed`.
    The layer's `counts` (a `Counts`) is the in-process counter.
    """
    if enabled is False:
        chosen: frozenset[str] = frozenset()
    elif enabled is True:
        chosen = frozenset(RULES if rules is None else rules)
    else:
        chosen = rules_from_env() if rules is None else frozenset(rules) & rules_from_env()
    if counts is None:
        counts = Counts(counts_path or os.environ.get(ENV_COUNTS) or None)
    return RealismLayer(app, rules=chosen, timings=timings, counts=counts, zone_rules=zone_rules, rates=rates,
                        seed=seed, clock=clock)
