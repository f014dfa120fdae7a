"""EC2's error answer: what a rule raises, and the document the layer sends for it."""
from __future__ import annotations

import uuid
from xml.sax.saxutils import escape


class Ec2Error(Exception):
    """An EC2 client error, answered as EC2 does (see `error_response`)."""

    def __init__(self, rule: str, code: str, message: str, status: str = "400 Bad Request"):
        super().__init__(f"{code}: {message}")
        self.rule, self.code, self.message, self.status = rule, code, message, status


def error_response(err: Ec2Error) -> tuple[str, list[tuple[str, str]], bytes]:
    """AWS: "Error codes for the Amazon EC2 API", section "Example error response": a
    `Response/Errors/Error` document with `Code` and `Message`, and a `RequestID`, with an HTTP 4xx
    status for a client error. botocore's ec2 parser reads exactly these elements."""
    request_id = str(uuid.uuid4())
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{escape(err.code)}</Code><Message>{escape(err.message)}</Message>"
            f"</Error></Errors><RequestID>{request_id}</RequestID></Response>").encode()
    headers = [("Content-Type", "text/xml;charset=UTF-8"), ("Content-Length", str(len(body))),
               ("x-amzn-RequestId", request_id), ("Server", "AmazonEC2")]
    return err.status, headers, body
