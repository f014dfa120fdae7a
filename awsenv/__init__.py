"""AWS-facing code: settings, provisioning, discovery (snapshot), host access.

Nothing here knows about the local data plane beyond the `Target` seam in targets.py.
"""
