"""Names for groups of drifts that many checks fail on together (see each check's fails_on).

A drift that cuts the internet off the web server fails every check that goes through it; the
checks list these groups rather than the same drift names again and again.
"""
WEB_UNREACHABLE = ("igw-detached", "public-default-route-removed", "web-stopped", "web-eip-disassociated")
WEB_SSH_LOST = WEB_UNREACHABLE + ("web-ssh-revoked",)
DB_SSH_LOST = WEB_SSH_LOST + ("db-ssh-revoked",)
WEB_HTTP_LOST = WEB_UNREACHABLE + ("http-rule-removed", "apache-removed")
