"""Test settings: the real settings module, with the local PostgreSQL and Redis as defaults."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/crmsync")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-that-is-long-enough-0123456789")
os.environ.setdefault("FIELD_ENCRYPTION_KEY", "dGVzdC1vbmx5LWZpZWxkLWVuY3J5cHRpb24ta2V5ISE=")
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
os.environ["CRMSYNC_TESTING"] = "true"


def _per_process_redis_db(url: str) -> str:
    """Concurrent test runs on one Redis must not share queues (a burst worker in one run would
    take another run's jobs): each pytest process uses its own database number (1 to 14)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{1 + os.getpid() % 14}"))


if not os.environ.get("CRMSYNC_TEST_REDIS_PINNED"):
    # Pinned for the run: worker subprocesses started by tests inherit it and share the queues.
    os.environ["REDIS_URL"] = _per_process_redis_db(os.environ["REDIS_URL"])
    os.environ["CRMSYNC_TEST_REDIS_PINNED"] = "1"

from crmsync.settings import *  # noqa: E402,F403
from crmsync.settings import DATABASES  # noqa: E402 - named for the per-process test database below

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed; never in production
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
JOBS_RUN_INLINE = True
STATIC_ROOT = None  # tests serve static files from the finders; no collectstatic output is needed
WHITENOISE_USE_FINDERS = True

# Each pytest process gets its own test database, so parallel runs (several developers or CI
# jobs on one PostgreSQL) never drop each other's. Subprocess tests read the name at run time.
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}
