"""A stricter emulator: a WSGI layer in front of moto's server app that answers as EC2 does where
moto doesn't (eventual consistency, pending/stopping/shutting-down, NAT gateway states, lingering
interfaces, mapped addresses, zones, a shared account, ...). It sits in the same process as moto
and reads its backends (`moto.ec2.models.ec2_backends`) directly.

One module per EC2 behaviour in `rules/`, each naming its source in its docstring (the AWS page,
the terraform-provider-aws or amazon.aws file that retries or waits the answer out) and the rate
at which it answers; `rules/__init__.py` is the registry. The core: `layer.py` (the WSGI
middleware), `query.py` (requests and moto's XML answers), `memory.py` (what the layer remembers
of the calls it saw), `gate.py` (transitional states held until a server's machine is there),
`errors.py` (EC2's error document), `config.py` (the switch and the windows), `counts.py`,
`clock.py`, `server.py`. emulator/README.md describes the rules, the switch
(`TWOTIER_EMULATOR_REALISM`, `..._SCALE`, `..._COUNTS`) and where the layer is on.

    from emulator import realism
    app = realism.wrap(realism.moto_app(), counts_path=path)

Put any signature-checking middleware *outside* this layer: the layer may rewrite a request's
parameters before moto sees them.
"""
from __future__ import annotations

from .clock import PausableClock
from .config import ENV_COUNTS, ENV_SCALE, ENV_SWITCH, Rates, Timings, rules_from_env
from .counts import Counts, read_counts
from .errors import Ec2Error
from .layer import RealismLayer, wrap
from .rules import REGISTRY, RULES, ZoneRules
from .server import RealisticMotoServer, moto_app

__all__ = ["ENV_COUNTS", "ENV_SCALE", "ENV_SWITCH", "REGISTRY", "RULES", "Counts", "Ec2Error", "PausableClock",
           "Rates", "RealismLayer", "RealisticMotoServer", "Timings", "ZoneRules", "moto_app", "read_counts",
           "rules_from_env", "wrap"]
