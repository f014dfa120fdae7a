"""Only the lab's owner may use its API: every request must carry an AWS SigV4 signature made with
the environment's own credentials, and moto's control paths (/moto-api/*) are closed to everyone.

`SigV4Gate` is a WSGI middleware in front of moto. It recomputes the signature with botocore's own
SigV4 signer from the request's method, path, query, signed headers, X-Amz-Date and body, and lets
the request through only when the access key id and the signature match. Anything else gets an
HTTP 403 with an EC2-style `AuthFailure` body (or its JSON form for JSON-protocol clients), which
boto3 and the AWS CLI turn into a ClientError, before moto sees it: a refused call changes nothing.
"""
from __future__ import annotations

import datetime
import hmac
import io
import json
import secrets
import uuid
from hashlib import sha256
from urllib.parse import quote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = datetime.timedelta(minutes=15)   # what AWS allows between X-Amz-Date and its clock
MAX_BODY = 32 * 1024 * 1024                 # an EC2 call is a few KB; never buffer without bound
LOGGED_REFUSALS = 50                        # then every 1000th: a flood must not fill the disk
REFUSED_PATHS = ("moto-api",)               # reset, data.json (key material), seed, state manager
_KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"   # the characters of a real access key id


def new_credentials() -> tuple[str, str]:
    """A fresh (access key id, secret access key) pair shaped like AWS's (AKIA + 16, 40 chars)."""
    key_id = "AKIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))
    return key_id, secrets.token_urlsafe(30)


class AuthError(Exception):
    """Why a request was refused (never says what the right key or signature would have been)."""


class _SignedHeadersOnly(SigV4Auth):
    """botocore's SigV4 signer, canonicalising exactly the headers the client says it signed."""

    def __init__(self, credentials, service, region, signed: list[str]):
        super().__init__(credentials, service, region)
        self._signed = signed

    def headers_to_sign(self, request):
        from botocore.awsrequest import HTTPHeaders

        header_map = HTTPHeaders()
        for name in self._signed:
            if name in request.headers:
                header_map[name] = request.headers[name]
        return header_map


def _parse_authorization(value: str) -> dict[str, str]:
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise AuthError(f"unsupported authorization scheme {algorithm[:40]!r} (want {ALGORITHM})")
    fields = {}
    for part in rest.split(","):
        key, sep, val = part.strip().partition("=")
        if sep:
            fields[key] = val
    if not {"Credential", "SignedHeaders", "Signature"} <= set(fields):
        raise AuthError("malformed Authorization header")
    return fields


def _request_headers(environ) -> dict[str, str]:
    headers = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").lower()] = value
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = environ[key]
    return headers


def _read_body(environ) -> bytes:
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    length = environ.get("CONTENT_LENGTH")
    if length:
        try:
            n = int(length)
        except ValueError:
            raise AuthError("bad Content-Length") from None
        if n < 0 or n > MAX_BODY:
            raise AuthError("request body too large")
        return stream.read(n) if n else b""
    if environ.get("wsgi.input_terminated"):   # chunked: the server ends the stream for us
        body = stream.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            raise AuthError("request body too large")
        return body
    return b""


def verify(environ, body: bytes, access_key_id: str, secret_access_key: str,
           now: datetime.datetime | None = None) -> None:
    """Raise AuthError unless the request is SigV4-signed with these credentials."""
    headers = _request_headers(environ)
    if "authorization" not in headers:
        raise AuthError("the request is not signed (no Authorization header)")
    fields = _parse_authorization(headers["authorization"])
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise AuthError("malformed credential scope")
    key_id, day, region, service, _ = scope
    if not hmac.compare_digest(key_id.encode(), access_key_id.encode()):
        raise AuthError("the access key id is not this lab's")
    stamp = headers.get("x-amz-date", "")
    try:
        when = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    except ValueError:
        raise AuthError("missing or malformed X-Amz-Date") from None
    now = now or datetime.datetime.now(datetime.UTC)
    if abs(now - when) > MAX_SKEW or stamp[:8] != day:
        raise AuthError("the signature has expired or is not yet valid (X-Amz-Date)")
    signed = [h for h in fields["SignedHeaders"].lower().split(";") if h]
    if "host" not in signed:
        raise AuthError("the host header must be signed")
    missing = [h for h in signed if h not in headers]
    if missing:
        raise AuthError(f"signed header(s) missing from the request: {', '.join(missing)[:80]}")
    declared = headers.get("x-amz-content-sha256")
    if declared is not None and declared != sha256(body).hexdigest():
        raise AuthError("X-Amz-Content-SHA256 does not match the body")
    path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or quote(environ.get("PATH_INFO", "/"))
    path = path.split("?", 1)[0] or "/"
    query = environ.get("QUERY_STRING", "")
    url = f"http://{headers['host']}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=environ.get("REQUEST_METHOD", "GET"), url=url,
                         headers={h: headers[h] for h in signed}, data=body)
    request.context["timestamp"] = stamp
    signer = _SignedHeadersOnly(Credentials(access_key_id, secret_access_key), service, region, signed)
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    if not hmac.compare_digest(expected.encode(), fields["Signature"].encode()):
        raise AuthError("the request signature does not match (wrong secret access key?)")


def _refusal(environ, message: str) -> tuple[str, list[tuple[str, str]], bytes]:
    request_id = str(uuid.uuid4())
    json_protocol = "HTTP_X_AMZ_TARGET" in environ or "amz-json" in environ.get("CONTENT_TYPE", "")
    if json_protocol:
        body = json.dumps({"__type": "AuthFailure", "message": message}).encode()
        ctype = "application/x-amz-json-1.1"
    else:
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>AuthFailure</Code>'
                f"<Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID>"
                "</Response>").encode()
        ctype = "text/xml;charset=UTF-8"
    return "403 Forbidden", [("Content-Type", ctype), ("Content-Length", str(len(body))),
                             ("x-amzn-RequestId", request_id)], body


class SigV4Gate:
    """WSGI middleware: pass a request to `app` only when it is signed with the lab's credentials."""

    def __init__(self, app, access_key_id: str, secret_access_key: str, log=None):
        if not access_key_id or not secret_access_key:
            raise ValueError("the lab's API needs credentials")
        self.app = app
        self._key_id = access_key_id
        self._secret = secret_access_key
        self._log = log
        self.refused = 0

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        try:
            if any(p in path.lower() for p in REFUSED_PATHS):
                raise AuthError("moto's control API is not available on the lab's endpoint")
            body = _read_body(environ)
            verify(environ, body, self._key_id, self._secret)
        except AuthError as exc:
            self.refused += 1
            if self._log and (self.refused <= LOGGED_REFUSALS or self.refused % 1000 == 0):
                self._log(f"API: refused {environ.get('REQUEST_METHOD', '?')} {path[:60]!r}: {exc} "
                          f"({self.refused} refused so far)")
            # The fixed message is AWS's; the reason goes to the lab's log, not to the caller.
            status, headers, payload = _refusal(environ, "AWS was not able to validate the provided access credentials")
            start_response(status, headers)
            return [payload]
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("wsgi.input_terminated", None)
        return self.app(environ, start_response)
