"""Balie's configuration: one typed object, read once from the environment (prefix BALIE_)."""

from __future__ import annotations

import enum
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["PLACEHOLDER_SECRET", "Environment", "Settings"]

# Good enough to run the demo and the tests; refused in production (see _refuse_placeholders).
PLACEHOLDER_SECRET = "dev-only-not-a-secret-change-me-0000000000"  # noqa: S105


class Environment(enum.StrEnum):
    DEV = "dev"
    TEST = "test"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """Everything Balie reads from outside. Nothing else looks at `os.environ`."""

    model_config = SettingsConfigDict(env_prefix="BALIE_", env_file=None, extra="forbid")

    environment: Environment = Environment.DEV
    data_dir: Path = Path("var")
    database_url: str = Field(
        default="", description="SQLAlchemy async URL; empty means SQLite in data_dir/balie.db"
    )
    key_dir: Path | None = Field(default=None, description="KEK files; default data_dir/keys")
    blob_dir: Path | None = Field(
        default=None, description="sealed documents; default data_dir/blobs"
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: str = Field(
        default="", description="how browsers reach Balie; default http://<host>:<port>"
    )
    pseudonym_key: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    # Seals staff TOTP secrets and similar small server-side secrets. Unlike the pseudonym key
    # it may be rotated (staff then enrol their authenticator again).
    secret_key: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    # Staff single sign-on (OpenID Connect); off while oidc_issuer is empty.
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: SecretStr = SecretStr("")
    oidc_role_claim: str = "roles"
    oidc_department_claim: str = "department"
    # JSON, e.g. {"balie-medewerkers": "clerk", "balie-informatiebeheer": "information_manager"}
    oidc_role_mapping: dict[str, str] = Field(default_factory=dict)
    # DigiD in production (dev/test use the built-in test IdP instead).
    digid_idp_metadata: Path | None = Field(default=None, description="DigiD's metadata XML")
    digid_sp_key: Path | None = None
    digid_sp_cert: Path | None = None
    # Client certificate for artifact resolution (DigiD requires mutual TLS there).
    digid_tls_cert: Path | None = None
    digid_tls_key: Path | None = None
    # WebRTC: ICE servers handed to admitted participants (TURN with short-lived credentials).
    stun_urls: list[str] = Field(default_factory=list)
    turn_urls: list[str] = Field(default_factory=list)
    turn_secret: SecretStr = SecretStr("")
    precall_max_sessions: int = Field(default=4, ge=1, le=100)
    precall_max_seconds: float = Field(default=60.0, gt=0, le=600)
    document_segment_size: int = Field(default=1 << 20, ge=4096, le=16 << 20)
    # Uploads: the limit is enforced while the body streams in (413 past it).
    document_max_bytes: int = Field(default=20 << 20, ge=1024, le=1 << 40)
    document_types: list[str] = Field(
        default_factory=lambda: ["application/pdf", "image/jpeg", "image/png"]
    )
    document_max_pixels: int = Field(default=50_000_000, ge=10_000, le=500_000_000)
    # Off only for benchmarks and for installations that check documents elsewhere: without
    # it, photos keep their metadata (GPS positions) and PDFs are not checked for scripts.
    document_inspection: bool = True
    # clamd INSTREAM scanning; unset: no scanning. Set: every upload is scanned, fail closed.
    clamd_host: str | None = None
    clamd_port: int = Field(default=3310, ge=1, le=65535)
    clamd_socket: Path | None = None
    clamd_timeout: float = Field(default=30.0, gt=0, le=600)
    # Payments: "demo" (Balie's own checkout page, dev/test only) or "mollie". Unset: the
    # demo in dev/test, and no payments in production.
    payment_provider: str | None = None
    mollie_api_key: SecretStr = SecretStr("")
    mollie_base_url: str = "https://api.mollie.com/v2"
    payment_reconcile_minutes: float = Field(default=5.0, gt=0, le=1440)
    # The retention and service policy (fees per service type); default: the example.
    policy_file: Path = Field(
        default=Path(__file__).resolve().parent.parent / "deploy" / "policy.example.toml"
    )
    # Export: packages are written here (default: data_dir/exports) and kept for the clerk
    # to download for this many hours; the ZGW target is used when its URLs are set.
    export_dir: Path | None = None
    export_package_hours: float = Field(default=24.0, gt=0, le=24 * 14)
    zgw_documenten_url: str = ""
    zgw_zaken_url: str = ""
    zgw_client_id: str = ""
    zgw_secret: SecretStr = SecretStr("")
    zgw_informatieobjecttype: str = ""
    zgw_bronorganisatie: str = ""
    # Retention (DESIGN §3, §9): the sweeper destroys dossiers past their deadline in batches;
    # a month's KEK goes when every dossier it wrapped is this many days past its deadline.
    retention_sweep_minutes: float = Field(default=5.0, gt=0, le=1440)
    retention_sweep_batch: int = Field(default=100, ge=1, le=10_000)
    key_destruction_grace_days: int = Field(default=30, ge=0, le=3650)
    # Audit checkpoints: signed every N events or M minutes (whichever comes first), kept in
    # the database and in the witness directory, which belongs on other storage (a separate
    # mount, WORM bucket or another host's share) so that one compromise cannot rewrite both.
    audit_checkpoint_events: int = Field(default=1000, ge=1, le=1_000_000)
    audit_checkpoint_minutes: float = Field(default=60.0, gt=0, le=7 * 1440)
    audit_witness_dir: Path | None = Field(
        default=None, description="witness copies of checkpoints; default data_dir/witness"
    )
    audit_signing_key: Path | None = Field(
        default=None, description="Ed25519 checkpoint key; default key_dir/audit-checkpoint.pem"
    )
    # Retention warnings by e-mail; off while smtp_host is empty (the console shows them anyway).
    smtp_host: str = ""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_starttls: bool = True
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_from: str = ""
    smtp_timeout: float = Field(default=30.0, gt=0, le=600)
    # Department code -> address for its warnings; addresses of the information managers.
    notify_departments: dict[str, str] = Field(default_factory=dict)
    notify_information_managers: list[str] = Field(default_factory=list)
    migrate_on_start: bool = True

    @property
    def is_development(self) -> bool:
        """dev and test: keys are made on demand and the DigiD test IdP may run."""
        return self.environment in (Environment.DEV, Environment.TEST)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'balie.db'}"

    @property
    def public_origin(self) -> str:
        """Scheme, host and port that browsers use: what a same-origin request's Origin says."""
        url = self.public_url or f"http://{self.host}:{self.port}"
        return url.rstrip("/")

    @property
    def resolved_payment_provider(self) -> str | None:
        return self.payment_provider or ("demo" if self.is_development else None)

    @property
    def resolved_export_dir(self) -> Path:
        return self.export_dir or self.data_dir / "exports"

    @property
    def resolved_key_dir(self) -> Path:
        return self.key_dir or self.data_dir / "keys"

    @property
    def resolved_witness_dir(self) -> Path:
        return self.audit_witness_dir or self.data_dir / "witness"

    @property
    def resolved_audit_signing_key(self) -> Path:
        return self.audit_signing_key or self.resolved_key_dir / "audit-checkpoint.pem"

    @property
    def resolved_blob_dir(self) -> Path:
        return self.blob_dir or self.data_dir / "blobs"

    @model_validator(mode="after")
    def _digid_complete(self) -> Settings:
        if self.digid_idp_metadata is not None and None in (self.digid_sp_key, self.digid_sp_cert):
            raise ValueError(
                "BALIE_DIGID_IDP_METADATA needs BALIE_DIGID_SP_KEY and BALIE_DIGID_SP_CERT too"
            )
        if (self.digid_tls_cert is None) != (self.digid_tls_key is None):
            raise ValueError("BALIE_DIGID_TLS_CERT and BALIE_DIGID_TLS_KEY go together")
        return self

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> Settings:
        if self.environment is Environment.PRODUCTION:
            for name, value in (
                ("PSEUDONYM_KEY", self.pseudonym_key),
                ("SECRET_KEY", self.secret_key),
            ):
                secret = value.get_secret_value()
                if secret == PLACEHOLDER_SECRET or len(secret) < 32:
                    raise ValueError(
                        f"BALIE_{name} must be set to a random secret of at least 32 characters "
                        "in production (the development placeholder is refused)"
                    )
            if not self.database_url:
                raise ValueError("BALIE_DATABASE_URL must be set explicitly in production")
            if self.payment_provider == "demo":  # it would let anyone "pay" with a click
                raise ValueError(
                    "BALIE_PAYMENT_PROVIDER=demo is for development and tests; "
                    "set mollie (and BALIE_MOLLIE_API_KEY) in production"
                )
        return self
