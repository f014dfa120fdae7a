"""moto behind the layer on a thread: what the self-tests serve."""
from __future__ import annotations

import ipaddress
import threading
from typing import Any

from .layer import wrap


def moto_app():
    """moto's own server app (what moto.server and ThreadedMotoServer serve)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    return DomainDispatcherApplication(create_backend_app)


class RealisticMotoServer:
    """moto behind the realism layer, on a thread, on loopback only: ThreadedMotoServer's API
    (start, stop, get_host_and_port) plus `.layer`. `outer` wraps the layer once more (e.g. a
    signature gate, which must sit outside the layer)."""

    def __init__(self, ip_address: str = "127.0.0.1", port: int = 0, *, outer=None, **wrap_kwargs):
        if not ipaddress.ip_address(ip_address).is_loopback:
            raise ValueError(f"the emulator binds to loopback only, not {ip_address}")
        self._ip, self._port = ip_address, port
        self.layer = wrap(moto_app(), **wrap_kwargs)
        self.app = outer(self.layer) if outer else self.layer
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> RealisticMotoServer:
        from moto.moto_server.werkzeug_app import MotoRequestHandler
        from werkzeug.serving import make_server

        server = make_server(self._ip, self._port, self.app, threaded=True, request_handler=MotoRequestHandler)
        thread = threading.Thread(target=server.serve_forever, name="realistic-moto", daemon=True)
        thread.start()
        self._server, self._thread = server, thread
        return self

    def get_host_and_port(self) -> tuple[str, int]:
        assert self._server is not None, "call start() first"
        host, port = self._server.server_address[:2]
        return str(host), port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
