"""The SOAP back channel to DigiD: an aiohttp-based `Transport`, and its TLS context.

DigiD only answers artifact resolution over mutual TLS, with the PKIoverheid certificate the
municipality registered; `mutual_tls_context` builds the `ssl.SSLContext` for the
`aiohttp.ClientSession` (one per application, in a cleanup context) that
`aiohttp_transport` posts with.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp

from identity.digid.errors import DigidArtifactResolveFailed
from identity.digid.sp import Transport

__all__ = ["MAX_SOAP_RESPONSE", "aiohttp_transport", "mutual_tls_context"]

MAX_SOAP_RESPONSE = 1024 * 1024
# SAML bindings 3.2.3.1 suggests this SOAPAction; DigiD ignores it, some proxies route on it.
_SOAP_ACTION = "http://www.oasis-open.org/committees/security"


def mutual_tls_context(
    *, client_cert: Path, client_key: Path, ca_bundle: Path | None = None
) -> ssl.SSLContext:
    """A client TLS context presenting `client_cert`; verifies the server against `ca_bundle`
    (or the system's trust store). Raises OSError/ssl.SSLError if the files are unusable."""
    context = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=str(client_cert), keyfile=str(client_key))
    return context


def aiohttp_transport(session: aiohttp.ClientSession, *, timeout: float = 10.0) -> Transport:
    """A Transport that POSTs SOAP with `session` (which carries the TLS settings).

    The returned callable raises DigidArtifactResolveFailed for a non-200 status or an answer
    over 1 MiB; network errors propagate and `resolve_artifact` wraps them.
    """

    async def post(url: str, body: bytes) -> bytes:
        async with session.post(
            url,
            data=body,
            headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": _SOAP_ACTION},
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as response:
            if response.status != 200:
                raise DigidArtifactResolveFailed(
                    f"artifact resolution at {url} answered HTTP {response.status}"
                )
            data = await response.content.read(MAX_SOAP_RESPONSE + 1)
            if len(data) > MAX_SOAP_RESPONSE:
                raise DigidArtifactResolveFailed(f"artifact resolution at {url}: answer too big")
            return data

    return post
