"""The EC2 Query API as the rules see it: the request's parameters, moto's answer as XML, and
small helpers to read moto's backends without tripping over what it half-knows."""
from __future__ import annotations

import fnmatch
import io
import os
import re
import xml.etree.ElementTree as ET
from urllib.parse import urlencode


class Request:
    """One EC2 Query API request: its parameters, and what rules note about it on the way."""

    def __init__(self, environ, body: bytes, params: list[tuple[str, str]], region: str, account: str):
        self.environ = environ
        self.body = body
        self.params = params
        self.forward_params: list[tuple[str, str]] | None = None  # set when moto must see other params
        self.action = self.get("Action") or ""
        self.region = region
        self.account = account
        self.notes: dict = {}

    def get(self, key: str, default=None):
        for k, v in self.params:
            if k == key:
                return v
        return default

    def values(self, prefix: str) -> list[str]:
        """Values of `prefix.N` keys (a flattened list parameter), in order."""
        pattern = re.compile(re.escape(prefix) + r"\.(\d+)$")
        found = [(int(m.group(1)), v) for k, v in self.params if (m := pattern.match(k))]
        return [v for _, v in sorted(found)]

    def tags(self, resource_type: str) -> dict[str, str]:
        """Tags a create call asks for through TagSpecification.N for this resource type."""
        tags: dict[str, str] = {}
        for n in range(1, 50):
            kind = self.get(f"TagSpecification.{n}.ResourceType")
            if kind is None:
                break
            if kind != resource_type:
                continue
            for m in range(1, 51):
                key = self.get(f"TagSpecification.{n}.Tag.{m}.Key")
                if key is None:
                    break
                tags[key] = self.get(f"TagSpecification.{n}.Tag.{m}.Value", "")
        return tags

    def strip_filters(self, names: set[str]) -> dict[str, list[str]]:
        """Take these filters out of what moto sees (the rule applies them itself, to what it
        answers); returns them as {name: values}, empty when the request had none of them."""
        params, removed = strip_filters(self.forward_params or self.params, names)
        if removed:
            self.forward_params = params
        return removed


def leaf(key: str) -> str:
    for part in reversed(key.split(".")):
        if not part.isdigit():
            return part
    return key


def filters(params: list[tuple[str, str]]) -> dict[str, list[str]]:
    """The request's Filter.N.Name / Filter.N.Value.M as {name: [values]}."""
    names: dict[str, str] = {}
    values: dict[str, list[str]] = {}
    for key, value in params:
        parts = key.split(".")
        if parts[0] != "Filter" or len(parts) < 3:
            continue
        if parts[2] == "Name":
            names[parts[1]] = value
        elif parts[2] == "Value":
            values.setdefault(parts[1], []).append(value)
    return {name: values.get(n, []) for n, name in names.items()}


def strip_filters(params: list[tuple[str, str]], strip: set[str]):
    """Remove the named filters (renumbering the rest from 1, as moto reads them) and return
    (params without them, {name: values} of the removed ones)."""
    names = {key.split(".")[1]: value for key, value in params
             if key.startswith("Filter.") and key.count(".") == 2 and key.endswith(".Name")}
    removed_idx = {n for n, name in names.items() if name in strip}
    if not removed_idx:
        return params, {}
    removed = {name: vals for name, vals in filters(params).items() if name in strip}
    kept_idx = sorted((n for n in names if n not in removed_idx), key=int)
    renumber = {old: str(i + 1) for i, old in enumerate(kept_idx)}
    out = []
    for key, value in params:
        if key.startswith("Filter."):
            parts = key.split(".")
            if parts[1] in removed_idx:
                continue
            if parts[1] in renumber:
                parts[1] = renumber[parts[1]]
                key = ".".join(parts)
        out.append((key, value))
    return out, removed


def matches(value: str | None, patterns: list[str]) -> bool:
    """EC2 filter values match exactly or with the `*` and `?` wildcards."""
    return value is not None and any(fnmatch.fnmatchcase(value, p) for p in patterns)


# -- moto's answer as XML ---------------------------------------------------------------------------

def ln(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def kids(el, name: str) -> list:
    return [c for c in el if ln(c.tag) == name]


def walk(el, path) -> list:
    found = [el]
    for name in path:
        found = [c for parent in found for c in kids(parent, name)]
    return found


def text(el, name: str) -> str | None:
    found = kids(el, name)
    return found[0].text if found else None


def set_text(el, name: str, value: str, ns: str) -> None:
    found = kids(el, name)
    if found:
        found[0].text = value
    else:
        ET.SubElement(el, q(ns, name)).text = value


def q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}" if ns else name


def remove_items(root, path, keep) -> int:
    """Remove the items at `path` (ending in "item") for which keep(item) is false; return how many."""
    removed = 0
    for parent in walk(root, path[:-1]):
        for item in kids(parent, path[-1]):
            if not keep(item):
                parent.remove(item)
                removed += 1
    return removed


def drop_empty_reservations(root) -> None:
    """DescribeInstances: a reservation whose instances were all left out is left out too."""
    remove_items(root, ("reservationSet", "item"), lambda res: any(kids(s, "item") for s in kids(res, "instancesSet")))


class Doc:
    """A moto answer as XML, written back only when something changed."""

    def __init__(self, body: bytes):
        self.body = body
        self.root = ET.fromstring(body)
        self.ns = self.root.tag[1:].split("}", 1)[0] if self.root.tag.startswith("{") else ""
        self.changed = False

    def bytes(self) -> bytes:
        if not self.changed:
            return self.body
        out = ET.tostring(self.root, encoding="unicode", default_namespace=self.ns or None)
        return ('<?xml version="1.0" encoding="UTF-8"?>\n' + out).encode()


# -- requests of our own, to moto ---------------------------------------------------------------------

def with_params(environ, params: list[tuple[str, str]]):
    """A copy of `environ` carrying these Query API parameters as its (POST) body."""
    body = urlencode(params).encode()
    env = dict(environ)
    env.update({"REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/x-www-form-urlencoded; charset=utf-8",
                "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "QUERY_STRING": ""})
    env.pop("wsgi.input_terminated", None)
    env.pop("werkzeug.request", None)
    return env


def credential_scope(authorization: str) -> tuple[str | None, str | None, str | None]:
    """(service, region, access key id) from a SigV4 Authorization header."""
    match = re.search(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request", authorization or "")
    if not match:
        return None, None, None
    return match.group(3).lower(), match.group(2), match.group(1)


def account(environ, access_key: str | None) -> str:
    """The account moto files the request under (moto.core.responses.BaseResponse.get_current_account)."""
    from moto.core import DEFAULT_ACCOUNT_ID

    if "MOTO_ACCOUNT_ID" in os.environ:
        return os.environ["MOTO_ACCOUNT_ID"]
    if environ.get("HTTP_X_MOTO_ACCOUNT_ID"):
        return environ["HTTP_X_MOTO_ACCOUNT_ID"]
    if access_key:
        try:
            from moto.iam.models import get_account_id_from

            return get_account_id_from(access_key)
        except moto_errors():
            pass
    return DEFAULT_ACCOUNT_ID


# -- moto's backends ------------------------------------------------------------------------------------

def moto_errors() -> tuple[type[BaseException], ...]:
    """What moto raises for a resource it doesn't know (or a half-gone one, e.g. a terminated
    instance whose interfaces are deleted): its service errors, and lookups that find nothing."""
    from moto.core.exceptions import ServiceException

    return (ServiceException, LookupError, AttributeError, TypeError, ValueError)


def safe(fn, default=None):
    try:
        return fn()
    except moto_errors():
        return default


def prop(obj, path: str, default=None):
    """obj.a.b for path "a.b", or `default` when moto can't say (see `moto_errors`)."""
    try:
        for name in path.split("."):
            obj = getattr(obj, name)
        return obj
    except moto_errors():
        return default
