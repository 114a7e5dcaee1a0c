"""Every piece of shared application state, under a typed key. Nothing lives in globals."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from dossier.db import Clock
from dossier.store import DossierStore
from identity.providers import IdentityProvider
from retention.policy_versions import CurrentPolicy
from server.ratelimit import RateLimiter
from server.settings import Settings

__all__ = [
    "CLOCK",
    "DOSSIER_STORE",
    "ENGINE",
    "IDENTITY_PROVIDERS",
    "LOGIN_LIMITER",
    "POLICY",
    "SETTINGS",
]

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
DOSSIER_STORE = web.AppKey("dossier_store", DossierStore)
CLOCK = web.AppKey("clock", Clock)
LOGIN_LIMITER = web.AppKey("login_limiter", RateLimiter)
IDENTITY_PROVIDERS = web.AppKey("identity_providers", dict[str, IdentityProvider])
# The policy in force; a holder, because approving a new version changes it while serving.
POLICY = web.AppKey("policy", CurrentPolicy)
