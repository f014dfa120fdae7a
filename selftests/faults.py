"""TEST-ONLY fault injector: throttling, 5xx answers and signals at chosen API calls.

Nothing in the product loads it: the self-tests start provision.py and pytest with
selftests/faultsite on PYTHONPATH, whose sitecustomize installs it into every boto3 session of
that process when TWOTIER_TEST_FAULTS (a JSON object) is set. It works only against a loopback
endpoint: the configured endpoints (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_EC2) are checked at
install, and every request's own URL again before it is answered, so it can never make a run
against real AWS misbehave. The selftests use it to prove that `up`, the checks
and `down` survive a flaky API and interruptions at any point. Keys:

    rate     fraction of HTTP attempts answered with a fault instead of being sent (default 0)
    seed     random seed, so a failing run can be repeated (default 0)
    kinds    faults to draw from: "throttle" (400 ThrottlingException / RequestLimitExceeded),
             "5xx" (500 InternalError / 503 Unavailable) [default: both]
    lost     fraction of creating calls that DO reach the server, whose answer is then replaced by
             a 500 (what a real "5xx after the create happened" looks like) (default 0)
    signal   "SIGINT" or "SIGTERM", sent to this process at API call number `at`
    at       which API call: its 1-based number (counted at botocore's before-call), or
             "service.Operation#K" for the K-th call of that operation (e.g. "ec2.RunInstances#2")
    phase    "before" (the call is never made) or "after" (it was made, its answer not yet used)
    raise    "OSError", "SSHException" or "ResponseParserError": raised in this process at call `at`
             (with `phase`), an error of a type outside the ones the CLI names, as a broken network,
             an SSH library or a garbled answer would raise it
    backoff_scale  multiply botocore's retry delays by this (default 1): the retry logic stays
             botocore's own (standard mode, attempts, retry quota), only the waiting is shorter
    log      file to append one line per injected fault / signal / call, for the test to read

Faults are answered BEFORE the request is sent, so the server never sees a throttled or
5xx-answered attempt: that is what throttling is on AWS, and a 5xx that never reached the
service. `lost` models the other kind (see the selftest test_aws_faults.py).
"""
from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from urllib.parse import urlparse

from botocore.awsrequest import AWSResponse

from awsenv.errors import EnvError

ENV_VAR = "TWOTIER_TEST_FAULTS"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
CREATING = ("Create", "RunInstances", "AllocateAddress", "ImportKeyPair")

_THROTTLE = {"ec2": (400, "RequestLimitExceeded", "Request limit exceeded."),
             "*": (400, "ThrottlingException", "Rate exceeded")}
_5XX = [(500, "InternalError", "An internal error has occurred"), (503, "Unavailable", "Service unavailable")]


class _Raw:
    def __init__(self, body: bytes):
        self._body = body

    def stream(self, **_):
        yield self._body


def _error_body(service: str, code: str, message: str) -> tuple[bytes, dict]:
    if service in ("ssm",):       # JSON protocol
        return (json.dumps({"__type": code, "message": message}).encode(),
                {"Content-Type": "application/x-amz-json-1.1"})
    if service == "ec2":
        return (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>{code}</Code>"
                f"<Message>{message}</Message></Error></Errors><RequestID>fault</RequestID></Response>").encode(), {}
    return (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>fault</RequestId></ErrorResponse>").encode(), {"Content-Type": "text/xml"}


class FaultInjector:
    def __init__(self, spec: dict):
        self.rate = float(spec.get("rate", 0))
        self.lost = float(spec.get("lost", 0))
        self.kinds = spec.get("kinds", ["throttle", "5xx"])
        self.random = random.Random(spec.get("seed", 0))
        self.signal = getattr(signal, spec["signal"]) if spec.get("signal") else None
        self.at = spec.get("at", 0)
        self.phase = spec.get("phase", "before")
        self.raise_name = spec.get("raise")
        self.log_path = spec.get("log")
        self.backoff_scale = float(spec.get("backoff_scale", 1))
        self.calls = 0
        self.per_op: dict[str, int] = {}
        self.injected = 0
        self._lock = threading.Lock()

    def install(self, events) -> None:
        if self.backoff_scale != 1:
            _scale_backoff(self.backoff_scale)
        events.register("before-call", self.before_call)
        events.register("after-call", self.after_call)
        events.register("before-send", self.before_send)

    def _log(self, line: str) -> None:
        if self.log_path:
            with open(self.log_path, "a") as f:
                f.write(f"{time.monotonic():.4f} {line}\n")

    def before_call(self, model, context, **_):
        op = f"{model.service_model.service_name}.{model.name}"
        with self._lock:
            self.calls += 1
            self.per_op[op] = self.per_op.get(op, 0) + 1
            n = self.calls
            context["twotier_hit"] = self.at in (n, f"{op}#{self.per_op[op]}")
        self._log(f"call {n} {op}")
        if self.raise_name and context["twotier_hit"] and self.phase == "before":
            self._raise(op)
        if self.signal and context["twotier_hit"] and self.phase == "before":
            self._log(f"signal {self.signal.name} before call {self.at} {op}")
            os.kill(os.getpid(), self.signal)

    def _raise(self, op: str) -> None:
        self._log(f"raise {self.raise_name} at {op}")
        if self.raise_name == "SSHException":
            import paramiko

            raise paramiko.SSHException("injected: the SSH session broke")
        if self.raise_name == "ResponseParserError":
            from botocore.parsers import ResponseParserError

            raise ResponseParserError("injected: unable to parse the answer")
        raise OSError(113, "injected: No route to host")

    def after_call(self, model, context, **_):
        if self.raise_name and context.get("twotier_hit") and self.phase == "after":
            self._raise(f"{model.service_model.service_name}.{model.name}")
        if self.signal and context.get("twotier_hit") and self.phase == "after":
            self._log(f"signal {self.signal.name} after call {self.at} {model.service_model.service_name}.{model.name}")
            os.kill(os.getpid(), self.signal)

    def before_send(self, request, event_name, **_):
        _, service, op = event_name.split(".", 2)
        if urlparse(request.url).hostname not in LOOPBACK:
            raise EnvError(f"{ENV_VAR} is for tests only: refusing to touch a request to {request.url.split('?')[0]}")
        with self._lock:
            draw = self.random.random()
            lose = self.lost and op.startswith(CREATING) and self.random.random() < self.lost
        if lose:
            # The create reaches the service and happens; only its answer is lost to a 5xx.
            from botocore.httpsession import URLLib3Session

            URLLib3Session().send(request)
            return self._answer(request, service, op, (500, "InternalError", "answer lost after the create"))
        if draw >= self.rate:
            return None
        kind = self.kinds[int(draw / self.rate * len(self.kinds)) % len(self.kinds)]
        fault = _THROTTLE.get(service, _THROTTLE["*"]) if kind == "throttle" else _5XX[self.random.random() < 0.5]
        return self._answer(request, service, op, fault)

    def _answer(self, request, service, op, fault) -> AWSResponse:
        status, code, message = fault
        with self._lock:
            self.injected += 1
        self._log(f"fault {service}.{op} {status} {code}")
        body, headers = _error_body(service, code, message)
        return AWSResponse(request.url, status, {"x-amzn-RequestId": "fault", **headers}, _Raw(body))


def _scale_backoff(scale: float) -> None:
    from botocore.retries import standard

    original = standard.ExponentialBackoff.delay_amount
    if getattr(original, "twotier_scaled", False):
        return

    def delay_amount(self, context):
        return original(self, context) * scale
    delay_amount.twotier_scaled = True
    standard.ExponentialBackoff.delay_amount = delay_amount


def _configured_endpoints() -> list[str]:
    if os.environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() == "true":
        return [""]       # the endpoints are ignored: requests would go to real AWS
    return [os.environ.get(name, "") for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2")
            if name == "AWS_ENDPOINT_URL" or os.environ.get(name)]


def install_from_env(events) -> FaultInjector | None:
    """Install the injector on a boto3 session's events when TWOTIER_TEST_FAULTS asks for it."""
    text = os.environ.get(ENV_VAR)
    if not text:
        return None
    for endpoint in _configured_endpoints():
        if urlparse(endpoint).hostname not in LOOPBACK:
            raise EnvError(f"{ENV_VAR} is for tests only: it works against a local endpoint (AWS_ENDPOINT_URL on "
                           f"127.0.0.1), never against {endpoint or 'real AWS'}; unset it")
    try:
        spec = json.loads(text)
    except ValueError as exc:
        raise EnvError(f"{ENV_VAR} is not valid JSON: {exc}") from None
    injector = FaultInjector(spec)
    injector.install(events)
    return injector


def install_into_every_session() -> None:
    """Called by selftests/faultsite/sitecustomize.py: every boto3 session this process makes."""
    import boto3.session

    original = boto3.session.Session.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        install_from_env(self.events)

    boto3.session.Session.__init__ = __init__
