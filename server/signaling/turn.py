"""Short-lived TURN credentials (the TURN REST API that coturn's `use-auth-secret` accepts).

    username = "<expiry unix time>:<participant>"
    password = base64(HMAC-SHA1(shared secret, username))

Handed out only to admitted participants; they expire on their own, so nothing is revoked.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from typing import Any

__all__ = ["TURN_LIFETIME", "ice_servers", "turn_credentials"]

TURN_LIFETIME = dt.timedelta(hours=2)


def turn_credentials(
    secret: bytes, *, participant: str, now: dt.datetime, lifetime: dt.timedelta = TURN_LIFETIME
) -> tuple[str, str]:
    """(username, password) valid until now + lifetime."""
    username = f"{int((now + lifetime).timestamp())}:{participant}"
    digest = hmac.new(secret, username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def ice_servers(
    *,
    stun_urls: list[str],
    turn_urls: list[str],
    turn_secret: bytes,
    participant: str,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """The `iceServers` list for RTCPeerConnection; TURN only when a secret is configured."""
    servers: list[dict[str, Any]] = []
    if stun_urls:
        servers.append({"urls": list(stun_urls)})
    if turn_urls and turn_secret:
        username, credential = turn_credentials(turn_secret, participant=participant, now=now)
        servers.append({"urls": list(turn_urls), "username": username, "credential": credential})
    return servers
