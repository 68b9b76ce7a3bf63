"""Django settings, read once from the environment (see .env.example for every variable)."""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from limits import parse_many

from crmsync.env import env_bool, env_choice, env_int, env_list, env_parsed, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

DEBUG = env_bool("DEBUG", False)
TESTING = env_bool("CRMSYNC_TESTING", False)

SECRET_KEY = env_str("SECRET_KEY", "insecure-dev-only-secret-key" if DEBUG else None, required=not DEBUG)
if not DEBUG and len(SECRET_KEY or "") < 32:
    raise ImproperlyConfigured("SECRET_KEY must be at least 32 characters when DEBUG is off")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# The public base URL: used to build OAuth redirect URIs and webhook URLs that CRMs call.
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")


def _parse_database_url(value: str) -> dict:
    config = dj_database_url.parse(value, conn_max_age=60, conn_health_checks=True)
    if not config.get("ENGINE"):
        raise ValueError("unknown scheme")
    return config


DATABASES = {
    "default": env_parsed(
        "DATABASE_URL",
        {"ENGINE": "django.db.backends.sqlite3", "NAME": str(VAR_DIR / "crmsync.sqlite3")},
        _parse_database_url,
        "a database URL such as postgres://user@127.0.0.1:5432/crmsync or sqlite:///path.sqlite3",
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # SQLite is the embedded default: wait for the write lock instead of failing at once.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def _parse_redis_url(value: str) -> str:
    if not value.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("expected redis://, rediss:// or unix://")
    return value


REDIS_URL = env_parsed("REDIS_URL", None, _parse_redis_url, "a Redis URL such as redis://127.0.0.1:6379/0")


def _parse_fernet_keys(value: str) -> list[str]:
    keys = [key.strip() for key in value.split(",") if key.strip()]
    if not keys:
        raise ValueError("no key given")
    for key in keys:
        Fernet(key)  # raises ValueError for a key that is not 32 url-safe base64 bytes
    return keys


# Comma-separated Fernet keys: the first encrypts, all decrypt (rotation: see docs/SECURITY.md).
FIELD_ENCRYPTION_KEY = env_parsed(
    "FIELD_ENCRYPTION_KEY", None, _parse_fernet_keys, "one or more comma-separated Fernet keys"
)
if FIELD_ENCRYPTION_KEY is None:
    if not DEBUG:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEY is required when DEBUG is off")
    # DEBUG only: a fixed development key so a bare checkout starts. `make run` writes a real one.
    FIELD_ENCRYPTION_KEY = ["ZGV2ZWxvcG1lbnQtb25seS1rZXktZG8tbm90LXVzZSE="]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "django_rq",
    "encrypted_model_fields",
    "crmsync",
    "integrations",
    "mapping",
    "scoring",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "crmsync.urls"
WSGI_APPLICATION = "crmsync.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "crmsync.context_processors.current_account",
                "integrations.context_processors.connection_banners",
            ],
        },
    }
]

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# django-allauth: e-mail and password sign-in, verification configurable, MFA available.
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = env_choice("ACCOUNT_EMAIL_VERIFICATION", "optional", ("none", "optional", "mandatory"))
ACCOUNT_SIGNUP_ENABLED = env_bool("ACCOUNT_SIGNUP_ENABLED", False)
ACCOUNT_ADAPTER = "crmsync.auth_adapter.AccountAdapter"
ACCOUNT_RATE_LIMITS = {"login_failed": "10/m/ip,5/5m/key"}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
LOGIN_REDIRECT_URL = "/settings/"
LOGIN_URL = "/accounts/login/"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# E-mail
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Capsule CRM Sync <noreply@localhost>")

# Ingestion API
INGEST_MAX_EVENTS_PER_REQUEST = 500
INGEST_MAX_BODY_BYTES = env_int("INGEST_MAX_BODY_BYTES", 2_000_000, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = INGEST_MAX_BODY_BYTES


def _parse_rate(value: str) -> str:
    parse_many(value)  # raises ValueError for text that is not a rate
    return value


# Checked here so a typo stops start-up instead of failing every API request.
API_KEY_RATE_LIMIT = env_parsed("API_KEY_RATE_LIMIT", "60000/minute", _parse_rate, "a rate such as 60000/minute")

# The cache holds the status pages' settled figures (past hours and days of a month of outbox
# rows). In Redis when REDIS_URL is set, so every web process shares them and a restart does not
# recount a month; in process memory otherwise (the embedded default).
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL, "KEY_PREFIX": "cache"}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# Jobs: RQ over Redis when REDIS_URL is set; otherwise jobs run in-process after commit.
RQ_QUEUES = {
    name: {"URL": REDIS_URL or "redis://127.0.0.1:6379/0", "DEFAULT_TIMEOUT": 600}
    for name in ("realtime", "default", "batch")
}
# Shorter than RQ's 10-minute default so a killed worker's jobs are recovered quickly.
RQ_MAINTENANCE_INTERVAL = env_int("RQ_MAINTENANCE_INTERVAL", 60, minimum=5)

# Sync engine: retries (exponential backoff with jitter) and batching.
SYNC_RETRY_BASE_SECONDS = env_int("SYNC_RETRY_BASE_SECONDS", 30, minimum=1)
SYNC_RETRY_MAX_SECONDS = env_int("SYNC_RETRY_MAX_SECONDS", 6 * 3600, minimum=1)
SYNC_MAX_ATTEMPTS = env_int("SYNC_MAX_ATTEMPTS", 10, minimum=1)
# Batch and manual runs flush with this many threads per connection (same limiter, SKIP LOCKED),
# so our own work overlaps the CRM's answers and the run sits on the rate-limit floor.
SYNC_FLUSH_THREADS = env_int("SYNC_FLUSH_THREADS", 2, minimum=1)
# Real time: how long a worker waits for more events of the same burst before flushing.
SYNC_COALESCE_SECONDS = env_parsed("SYNC_COALESCE_SECONDS", 0.5, float, "a number of seconds")

# Sandbox CRMs (loopback emulators) for the demo and tests; production turns them off.
SANDBOX_ENABLED = env_bool("SANDBOX_ENABLED", DEBUG)
SANDBOX_DIR = Path(env_str("SANDBOX_DIR", str(VAR_DIR / "sandbox")))

# CRM endpoints: each provider's API and OAuth base URLs can be pointed at a sandbox, a regional
# data centre or a loopback emulator; client credentials come from the OAuth app you registered.
CRM_PROVIDER_ENV_NAMES = ("HUBSPOT", "SALESFORCE", "PIPEDRIVE", "ZOHO", "DYNAMICS", "COPPER", "FRESHSALES", "CLOSE")
CRM_ENDPOINTS = {
    name.lower(): {
        "api_url": env_str(f"{name}_API_URL"),
        "oauth_url": env_str(f"{name}_OAUTH_URL"),
        "client_id": env_str(f"{name}_CLIENT_ID"),
        "client_secret": env_str(f"{name}_CLIENT_SECRET"),
    }
    for name in CRM_PROVIDER_ENV_NAMES
}
CRM_HTTP_TIMEOUT_SECONDS = env_int("CRM_HTTP_TIMEOUT_SECONDS", 20, minimum=1)
# A CA bundle to trust for CRM TLS (the sandbox's local CA in development and tests).
CRM_CA_BUNDLE = env_str("CRM_CA_BUNDLE")

# Outgoing webhooks (integrations/webhooks_out): private, loopback and link-local targets are
# refused unless this is on (on-premises receivers, local development). Metadata addresses never.
WEBHOOKS_ALLOW_PRIVATE_TARGETS = env_bool("WEBHOOKS_ALLOW_PRIVATE_TARGETS", False)
WEBHOOKS_TIMEOUT_SECONDS = 10  # per request to a receiver
# A CA bundle to trust for receivers' TLS (an on-premises CA); unset: the public CAs (certifi).
WEBHOOKS_CA_BUNDLE = env_str("WEBHOOKS_CA_BUNDLE")

LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "crmsync.logging.RedactSecretsFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
