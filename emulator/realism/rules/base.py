"""What a rule is: a name, and hooks the layer calls before and after moto answers."""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from ..layer import RealismLayer
    from ..query import Doc, Request


class Rule:
    """One EC2 behaviour moto lacks. Subclasses set `name` and `after_actions` (the actions whose
    answer `after` reads; the layer parses only those) and override what they need:

    settle(req, now)      bring moto's state to what EC2 holds by now (e.g. a deleted NAT gateway's
                          interface gone once its linger is over); called first, for every EC2 call
    before(req, now)      raise `Ec2Error(self.name, code, message)` to answer as EC2 does instead
                          of moto, or change `req.forward_params` / `req.notes` for later
    after(req, doc, now)  rewrite moto's answer (`doc`, set `doc.changed`); count what it injected
                          with `self.count(req)`
    reset()               forget what it remembers (moto's /moto-api/reset); called once at the
                          start too, so a rule's memory is made there, under `self._lock`
    """

    name: ClassVar[str] = ""
    after_actions: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, layer: RealismLayer):
        self.layer = layer
        self._lock = threading.Lock()     # the layer serves requests on many threads
        self.reset()

    def reset(self) -> None:
        pass

    def settle(self, req: Request, now: float) -> None:
        pass

    def before(self, req: Request, now: float) -> None:
        pass

    def after(self, req: Request, doc: Doc, now: float) -> None:
        pass

    # -- for subclasses --------------------------------------------------------------------------------

    @property
    def memory(self):
        return self.layer.memory

    @property
    def timings(self):
        return self.layer.timings

    @property
    def rates(self):
        return self.layer.rates

    def backend(self, req: Request):
        return self.layer.backend(req)

    def count(self, req: Request, n: int = 1) -> None:
        self.layer.counts.add(self.name, req.action, n)
