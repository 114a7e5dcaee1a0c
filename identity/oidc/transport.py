"""The two HTTP calls the OIDC client makes, behind a one-method-each interface.

Production uses `AiohttpTransport` over the application's shared `aiohttp.ClientSession`; a test
may pass any object with the same two methods.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp

from identity.oidc.errors import OidcProviderUnavailable

__all__ = ["AiohttpTransport", "HttpReply", "OidcTransport"]

# Discovery documents, key sets and token responses are a few kilobytes; a provider (or
# something pretending to be one) that sends more is not going to be parsed into memory.
MAX_REPLY_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class HttpReply:
    """Status and parsed JSON body (None when the body was not JSON)."""

    status: int
    body: object


class OidcTransport(Protocol):
    async def get(self, url: str) -> HttpReply:
        """GET `url`; raises OidcProviderUnavailable when there is no HTTP answer at all."""
        ...

    async def post_form(
        self, url: str, form: Mapping[str, str], headers: Mapping[str, str]
    ) -> HttpReply:
        """POST `form` urlencoded; raises OidcProviderUnavailable when there is no answer."""
        ...


def _parse(raw: bytes) -> object:
    try:
        body: object = json.loads(raw)
    except ValueError:
        return None
    return body


class AiohttpTransport:
    """OidcTransport over an aiohttp session owned (opened and closed) by the caller."""

    def __init__(self, session: aiohttp.ClientSession, *, timeout_seconds: float = 10.0) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)

    async def _read(self, response: aiohttp.ClientResponse, url: str) -> HttpReply:
        # Counted while reading: Content-Length may be absent (chunked) or wrong.
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > MAX_REPLY_BYTES:
                raise OidcProviderUnavailable(
                    f"the identity provider sent more than {MAX_REPLY_BYTES} bytes from {url}"
                )
            chunks.append(chunk)
        return HttpReply(status=response.status, body=_parse(b"".join(chunks)))

    async def get(self, url: str) -> HttpReply:
        try:
            async with self._session.get(
                url, timeout=self._timeout, headers={"Accept": "application/json"}
            ) as response:
                return await self._read(response, url)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _unavailable(url, exc) from exc

    async def post_form(
        self, url: str, form: Mapping[str, str], headers: Mapping[str, str]
    ) -> HttpReply:
        try:
            # No redirects: a redirected POST would be replayed elsewhere as a GET, or resent
            # with the client secret to a host we never configured.
            async with self._session.post(
                url,
                data=dict(form),
                headers={"Accept": "application/json", **headers},
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                return await self._read(response, url)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _unavailable(url, exc) from exc


def _unavailable(url: str, exc: BaseException) -> OidcProviderUnavailable:
    # The exception type is enough to diagnose; its text may echo request details.
    host = urlsplit(url).netloc
    return OidcProviderUnavailable(
        f"the identity provider at {host} did not answer ({type(exc).__name__})"
    )
