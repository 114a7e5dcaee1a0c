"""ZGW client authentication, and the authenticated requests the `zgw` exporter makes.

The ZGW APIs (Open Zaak and others after the VNG standard) identify an application by a JWT,
signed with HS256 under the secret they share with it, that names the `client_id`; `user_id`
and `user_representation` name the person on whose behalf it acts, for the API's audit trail.
A token is made per user and reused for a few minutes: servers refuse a token whose `iat` is
too old (Open Zaak: after an hour by default).

`ZgwClient.call` maps what comes back onto the export errors:

    5xx, 429, timeout, unreachable   TargetUnavailable (a retry continues)
    401, 403                         ExportConfigError (credentials or authorisations)
    other 4xx, 3xx                   ExportFailed, with the API's own explanation

The secret never leaves `ZgwJwt`: not in `repr`, not in an error message, not in a log line.
Requests go only to URLs under the two configured APIs (`ZgwClient.own` checks the URLs the
APIs hand out), and never follow a redirect, so the token reaches nobody else.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
from joserfc import jwt
from joserfc.jwk import OctKey
from yarl import URL

from dossier.export.errors import ExportConfigError, ExportFailed, TargetUnavailable

__all__ = ["MIN_SECRET_BYTES", "ZgwClient", "ZgwJwt", "json_object", "matching", "results"]

log = logging.getLogger(__name__)

# HMAC keys below 112 bits are weak (NIST SP 800-131A); joserfc warns about them, we refuse.
MIN_SECRET_BYTES = 14
_REUSE_FOR = dt.timedelta(minutes=5)
_CRS = "EPSG:4326"  # the Zaken API wants to be told, even where no geometry travels
# An upload may take longer than one request's timeout, but not without bound: at least 1 MiB/s.
_MIN_UPLOAD_RATE = 1024 * 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ZgwJwt:
    """Authorization headers for one ZGW client (`client_id` with its shared `secret`)."""

    def __init__(
        self, client_id: str, secret: str, *, now: Callable[[], dt.datetime] = _utcnow
    ) -> None:
        self.client_id = client_id
        self._secret = secret
        self._now = now
        self._key: OctKey | None = None
        self._cached: tuple[str, dt.datetime, str] | None = None  # user, issued at, token

    def __repr__(self) -> str:
        return f"ZgwJwt(client_id={self.client_id!r})"

    def check(self) -> None:
        """Raise ExportConfigError if no usable token can be made with this configuration."""
        if not self.client_id:
            raise ExportConfigError("the ZGW client id is not set")
        if len(self._secret.encode()) < MIN_SECRET_BYTES:
            raise ExportConfigError(
                f"the ZGW secret of client {self.client_id!r} is missing or shorter than "
                f"{MIN_SECRET_BYTES} bytes"
            )

    def authorization(self, user_id: str) -> str:
        """`Bearer <jwt>` for a request on behalf of `user_id` (an employee id; "" for the
        application itself). Raises ExportConfigError for an unusable configuration."""
        now = self._now()
        if self._cached is not None:
            user, issued_at, token = self._cached
            if user == user_id and dt.timedelta(0) <= now - issued_at < _REUSE_FOR:
                return f"Bearer {token}"
        if self._key is None:
            self.check()
            self._key = OctKey.import_key(self._secret)
        claims = {
            "iss": self.client_id,
            "iat": int(now.timestamp()),
            "client_id": self.client_id,
            "user_id": user_id,
            "user_representation": user_id,
        }
        token = jwt.encode({"alg": "HS256", "typ": "JWT"}, claims, self._key)
        self._cached = (user_id, now, token)
        return f"Bearer {token}"


class ZgwClient:
    """JSON requests to a Documenten API and a Zaken API (their roots, without a final "/")."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        documenten_url: str,
        zaken_url: str,
        auth: ZgwJwt,
        timeout: float,
    ) -> None:
        self._http = http
        self.documenten = documenten_url.rstrip("/")
        self.zaken = zaken_url.rstrip("/")
        self.auth = auth
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"ZgwClient(documenten={self.documenten!r}, zaken={self.zaken!r})"

    def own(self, url: object, root: str, what: str) -> str:
        """`url` if the API named one of its own resources under `root`; ExportFailed if not."""
        if not isinstance(url, str) or not url.startswith(f"{root}/"):
            raise ExportFailed(f"the API answered with a {what} URL outside {root}: {url!r:.200}")
        return url

    async def call(
        self,
        method: str,
        url: str,
        *,
        user: str = "",
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        data: AsyncIterator[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        missing_ok: bool = False,
        upload: int = 0,
    ) -> Any:
        """The JSON answer; None for 204, and for 404 when `missing_ok`. Errors as the module
        docstring says. `upload` (bytes carried) lengthens the timeout in proportion."""
        api = "Zaken API" if url.startswith(f"{self.zaken}/") else "Documenten API"
        sent = {"Authorization": self.auth.authorization(user), "Accept": "application/json"}
        if api == "Zaken API":
            sent["Accept-Crs"] = _CRS
            if body is not None:
                sent["Content-Crs"] = _CRS
        sent.update(headers or {})
        # sock_read starts once the body is sent; total bounds a stalled upload as well.
        timeout = aiohttp.ClientTimeout(
            total=self._timeout + upload / _MIN_UPLOAD_RATE, sock_read=self._timeout
        )
        path = URL(url).path
        try:
            async with self._http.request(
                method,
                url,
                params=params,
                json=body,
                data=data,
                headers=sent,
                timeout=timeout,
                allow_redirects=False,  # the token goes to the API itself and nowhere else
            ) as response:
                status, raw = response.status, await response.read()
        except TimeoutError as exc:
            raise TargetUnavailable(f"the {api} did not answer {method} {path} in time") from exc
        except aiohttp.ClientError as exc:
            raise TargetUnavailable(
                f"the {api} could not be reached for {method} {path}: {type(exc).__name__}"
            ) from exc
        if status == 204 or (status == 404 and missing_ok):
            return None
        answer = _json(raw)
        if 200 <= status < 300:
            if not isinstance(answer, dict | list):
                raise ExportFailed(f"the {api} answered {method} {path} with something not JSON")
            return answer
        reason = _problem(answer)
        log.warning("the %s answered %s %s with HTTP %d", api, method, path, status)
        if status in (401, 403):
            raise ExportConfigError(
                f"the {api} refused client {self.auth.client_id!r} (HTTP {status}): {reason}"
            )
        if status == 429 or status >= 500:
            raise TargetUnavailable(f"the {api} answered HTTP {status} to {method} {path}")
        raise ExportFailed(f"the {api} refused {method} {path} (HTTP {status}): {reason}")


def json_object(answer: Any) -> Mapping[str, Any]:
    """`answer` if it is a JSON object; ExportFailed if not."""
    if not isinstance(answer, dict):
        raise ExportFailed("the API answered with something other than a JSON object")
    return answer


def results(answer: Any) -> list[dict[str, Any]]:
    """The objects of a list answer, paginated (`results`) or plain."""
    items = answer.get("results") if isinstance(answer, dict) else answer
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ExportFailed("the API answered a search with something other than a list")
    return items


def matching(answer: Any, query: Mapping[str, str]) -> list[dict[str, Any]]:
    """The search results that match `query` field by field: an API that ignored a filter
    must not make the exporter adopt another's object."""
    return [i for i in results(answer) if all(i.get(k) == v for k, v in query.items())]


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:  # includes UnicodeDecodeError
        return None


def _problem(answer: Any) -> str:
    """The API's explanation (ZGW problem details), as one short printable line."""
    if not isinstance(answer, dict):
        return "no reason given"
    text = str(answer.get("detail") or answer.get("title") or "no reason given")
    invalid = answer.get("invalidParams")
    if isinstance(invalid, list):
        fields = [
            f"{p.get('name')}: {p.get('reason')} ({p.get('code')})"
            for p in invalid
            if isinstance(p, dict)
        ]
        if fields:
            text = f"{text}; {'; '.join(fields)}"
    return _CONTROL.sub(" ", text)[:300]
