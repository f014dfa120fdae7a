"""A moto server on loopback for tests of the aws target: every call stays on 127.0.0.1."""
from __future__ import annotations

import contextlib
import os
import urllib.request

import boto3
from moto.server import ThreadedMotoServer


@contextlib.contextmanager
def moto_server():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # Threaded servers in one process share moto's backends: start each from empty.
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10).close()
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}
    env.pop("AWS_PROFILE", None)
    try:
        yield endpoint, env
    finally:
        server.stop()


def client(endpoint: str, service: str = "ec2"):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")
