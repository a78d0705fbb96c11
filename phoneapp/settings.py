"""Settings for phone-check, read from the environment (and an optional ``.env``) with django-environ.

Every variable and its default is documented in ``.env.example``. With nothing set, the app runs on embedded
defaults: SQLite, files under ``media/``, and classification in-process (no broker). ``DEBUG=0`` switches to
production mode, which requires ``SECRET_KEY`` (and, for the web process, ``ALLOWED_HOSTS``: phoneapp/wsgi.py) and
turns on secure cookies and HSTS.
"""

from __future__ import annotations

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from phoneapp.env_file import settings_file_read
from phoneapp.log_format import FORMATTERS

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
settings_file_read(BASE_DIR)

DEBUG: bool = env.bool("DEBUG", default=True)
# Idle OpenMP threads (torch) sleep instead of spinning. Read once when torch loads, which is after settings in
# every process; spinning threads on a 2-core box shared with the database and web server made eager torch
# predictions 4x slower under load (docs/performance.md).
os.environ.setdefault("OMP_WAIT_POLICY", env.str("OMP_WAIT_POLICY", default="PASSIVE"))

_DEV_SECRET_KEY = "insecure-development-key-never-use-in-production"
SECRET_KEY: str = env.str("SECRET_KEY", default=_DEV_SECRET_KEY if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG=0.")
# Production refuses a key anyone could guess or brute-force: Django's own deploy check (security.W009) only
# warns, and a 3-character key was seen starting fine. Same rule as W009: 50+ characters, 5+ distinct ones.
if not DEBUG and (
    SECRET_KEY == _DEV_SECRET_KEY
    or SECRET_KEY.startswith("django-insecure")
    or len(SECRET_KEY) < 50
    or len(set(SECRET_KEY)) < 5
):
    raise ImproperlyConfigured(
        "SECRET_KEY is too short or a default: with DEBUG=0 use 50 or more random characters, e.g. "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))'."
    )

# This machine's names: the development default, and what wsgi.py accepts while DEBUG is on only by default.
LOCAL_HOSTS: list[str] = ["localhost", "127.0.0.1", "[::1]", "testserver"]
ALLOWED_HOSTS: list[str] = env.list("ALLOWED_HOSTS", default=list(LOCAL_HOSTS) if DEBUG else [])
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Before rest_framework: its templates/rest_framework/api.html restyles DRF's browsable API page.
    "phoneapp",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "phoneapp.api.addresses.ApiCommonMiddleware",
    # A form Django refuses to read (too many files) is answered with a page saying why, under DEBUG too.
    "phoneapp.web.errors.RefusedFormMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Bodies longer than FORM_MAX_BYTES (REQUEST_MAX_BYTES for a signed-in person's pictures) are refused (413)
    # before anything reads them: middleware only reads a body in process_view (the CSRF check), after every
    # __call__ here, so this one can know who is signed in (the session and the user are read from cookies).
    "phoneapp.web.request_size.RequestSizeLimitMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # CSP on pages, no-store for logged-in users; outages (database, broker, storage) answer 503 + Retry-After.
    "phoneapp.web.security_headers.SecurityHeadersMiddleware",
    "phoneapp.web.outages.OutageMiddleware",
    # Unknown addresses under /api/ answer a JSON 404 (naming the address meant), never an add-a-slash redirect
    # (ApiCommonMiddleware above). Inside the security headers, so that answer gets them like any other.
    "phoneapp.api.addresses.ApiNotFoundMiddleware",
    # A selector's NotFound (e.g. someone else's upload) is a 404, like Http404.
    "phoneapp.web.errors.NotFoundMiddleware",
    # A page address opened with the wrong method (a sign-out or retry link) gets a page saying what to do.
    "phoneapp.web.errors.MethodNotAllowedPageMiddleware",
]
# Every password check goes through the login throttle (LOGIN_FAILURE_LIMIT per account and per address).
AUTHENTICATION_BACKENDS = ["phoneapp.auth_backends.ThrottledModelBackend"]

ROOT_URLCONF = "phoneapp.urls"
WSGI_APPLICATION = "phoneapp.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# SQLite, the embedded default, set up for concurrent web use: with Django's default (deferred transactions, no
# WAL) a transaction that read first and then wrote failed at once with "database is locked" instead of waiting,
# and readers blocked the writer: 313-323 of 400 uploads from 8 parallel clients answered 500. WAL lets readers run
# beside the one writer; IMMEDIATE takes the write lock when a transaction begins, so it waits its turn (up to the
# busy timeout) rather than failing half-way; synchronous=NORMAL is the durable-on-commit setting WAL is meant
# for. With it: 0 errors in 400 (tests/test_reliability_sqlite_concurrency.py, docs/reliability.md).
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": env.int("SQLITE_BUSY_TIMEOUT", default=20),
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The upload rate limit counts in this cache. The default (LocMemCache) counts per process; a deployment with
# several web processes sets CACHE_URL (redis://host:6379/1, or dbcache://phonecheck_cache after
# `manage.py createcachetable`) so the limit holds across them. A cache that is down never blocks an upload.
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}
if CACHES["default"]["BACKEND"].endswith("RedisCache"):
    CACHES["default"].setdefault("OPTIONS", {}).update({"socket_connect_timeout": 1, "socket_timeout": 1})

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")
# Uploaded pictures are never served from MEDIA_URL directly: views check ownership first.
MEDIA_URL = "/media-not-served/"
STORAGES = {
    "default": {"BACKEND": env.str("STORAGE_BACKEND", default="django.core.files.storage.FileSystemStorage")},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# Several worker machines share one S3-compatible store (docs/performance.md, "Scale out"): pip install
# django-storages[s3], STORAGE_BACKEND=storages.backends.s3.S3Storage and the S3_* variables below. Web and workers
# reach pictures only through the storage API, never through a local path.
if STORAGES["default"]["BACKEND"] == "storages.backends.s3.S3Storage":
    STORAGES["default"]["OPTIONS"] = {
        "bucket_name": env.str("S3_BUCKET"),
        "endpoint_url": env.str("S3_ENDPOINT_URL", default=None),
        "region_name": env.str("S3_REGION", default=None),
        "access_key": env.str("S3_ACCESS_KEY_ID", default=None),
        "secret_key": env.str("S3_SECRET_ACCESS_KEY", default=None),
        "location": env.str("S3_PREFIX", default=""),
        # Pictures are private: never public-read, and never overwritten (names are random anyway).
        "default_acl": None,
        "file_overwrite": False,
        "querystring_auth": True,
    }

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "upload"
LOGOUT_REDIRECT_URL = "login"

# --- Uploads -------------------------------------------------------------------------------------------------
UPLOAD_MAX_BYTES: int = env.int("UPLOAD_MAX_BYTES", default=15 * 1024 * 1024)
UPLOAD_MAX_FILES: int = env.int("UPLOAD_MAX_FILES", default=20)
UPLOAD_MAX_PIXELS: int = env.int("UPLOAD_MAX_PIXELS", default=40_000_000)
# Pictures per user and period (each file of a request counts), API and web form together.
UPLOAD_RATE_LIMIT: str = env.str("UPLOAD_RATE_LIMIT", default="120/minute")
# The longest request body accepted at all (phoneapp/web/request_size.py): the largest upload, UPLOAD_MAX_FILES
# pictures of UPLOAD_MAX_BYTES, plus 1 MiB for the form's other fields and multipart headers. Checked before any
# view, login or CSRF check reads the body; Django's own limits below do not count file parts.
REQUEST_MAX_BYTES: int = env.int("REQUEST_MAX_BYTES", default=max(UPLOAD_MAX_FILES, 1) * UPLOAD_MAX_BYTES + 1024 * 1024)
# Django refuses form fields (not files) larger than this in total, and more files than this.
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# The longest body of any other request (sign-in, reviews, the admin, ...; an upload sent to the form by someone not
# signed in): REQUEST_MAX_BYTES is for pictures from a known caller, not for anyone to make the server take in and
# spool (phoneapp/web/request_size.py).
FORM_MAX_BYTES = DATA_UPLOAD_MAX_MEMORY_SIZE + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = max(UPLOAD_MAX_FILES, 1) + 1
# Each model version's threshold and unsure band come from its manifest (phoneapp/selectors/decisions.py); set
# UNSURE_BAND (e.g. "0.2,0.8") only to override the band of every version. Empty = the models' own bands.
UNSURE_BAND: tuple[float, ...] = tuple(env.list("UNSURE_BAND", cast=float, default=[]))
HISTORY_PAGE_SIZE: int = env.int("HISTORY_PAGE_SIZE", default=24)
# How long a picture opened in the review queue stays its reviewer's: other reviewers are handed other pictures
# meanwhile (phoneapp/services/review_claims.py). Opening another picture gives the claim up at once.
REVIEW_CLAIM_SECONDS: int = env.int("REVIEW_CLAIM_SECONDS", default=300)
# Uploads older than this many days are deleted, rows and files (celery beat, hourly; or
# `manage.py delete_expired_uploads` from cron). 0 = keep forever.
RETENTION_DAYS: int = env.int("RETENTION_DAYS", default=0)
# Stored pictures lose their location, camera and free-text metadata (EXIF orientation kept) unless this is on.
KEEP_PICTURE_METADATA: bool = env.bool("KEEP_PICTURE_METADATA", default=False)

# --- Model ----------------------------------------------------------------------------------------------------
MODELS_DIR: Path = env.path("MODELS_DIR", default=BASE_DIR / "trained_models")
# The fast path (inference/export.py, docs/performance.md): "onnxruntime", "torch" (eager fp32), or empty for
# the model manifest's `options.engine`, else ONNX Runtime when installed. A fast path that fails its check against
# torch at load time falls back to torch by itself. Exported graphs are cached in INFERENCE_CACHE_DIR.
INFERENCE_ENGINE: str = env.str("INFERENCE_ENGINE", default="")
# Engine threads of each process that loads the model (ONNX Runtime's, or the eager-torch fallback's). 0: this
# process's share of its cores (phoneapp/serving_threads.py): a worker's cores divided among its processes (the
# Procfile's two processes on a 2-core box: one thread each, which carried more uploads per second than one process
# of two threads, 58.8 against 48.4; Run E, docs/experiments.md), every other process (a web process classifying
# without a broker, evaluation, the retrain's scoring) all of them. ``python -m inference`` takes
# $PHONECHECK_TORCH_THREADS (inference/runtime.py); training takes ``--threads``.
INFERENCE_THREADS: int = env.int("INFERENCE_THREADS", default=0)
# Empty: $PHONECHECK_CACHE_DIR, else $XDG_CACHE_HOME/phonecheck, else ~/.cache/phonecheck (per machine; entries
# are keyed by weights and code).
INFERENCE_CACHE_DIR: str = env.str("INFERENCE_CACHE_DIR", default="")
# Labelled pictures the shipped model was trained on (folders phone/ and not_phone/, or a manifest.csv); the
# retrain command adds them to the reviewed uploads (a folder that is not there stops the run, nothing trained).
# Never copied into the repository.
TRAINING_DATA_DIR: str = env.str("TRAINING_DATA_DIR", default="")
# A worker re-reads which model version is active at most this often (seconds); 0 = before every prediction.
ACTIVE_MODEL_CHECK_SECONDS: float = env.float("ACTIVE_MODEL_CHECK_SECONDS", default=2.0)
# An upload "processing" longer than this is handed back to the queue where no worker heartbeat tells whether its
# worker is alive (see ORPHAN_AFTER_SECONDS); an upload sent longer ago than this and still waiting is sent again.
PROCESSING_TIMEOUT_SECONDS: int = env.int("PROCESSING_TIMEOUT_SECONDS", default=300)
# With a Redis broker, workers write heartbeats listing the uploads they classify: an upload "processing" for
# longer than this that no live worker lists is handed back at the next sweep (a killed worker's uploads are
# done again within ~30 s instead of PROCESSING_TIMEOUT_SECONDS).
ORPHAN_AFTER_SECONDS: int = env.int("ORPHAN_AFTER_SECONDS", default=10)
# /healthz answers 503 ("storage": "low") when the media volume has less free space than this (local storage).
HEALTH_MIN_FREE_MB: int = env.int("HEALTH_MIN_FREE_MB", default=200)
# How often celery beat sweeps pending and orphaned uploads (a lock keeps two sweeps from running at once).
SWEEP_INTERVAL_SECONDS: float = env.float("SWEEP_INTERVAL_SECONDS", default=10.0)
# How often each worker writes its heartbeat (alive + the uploads in hand) for /healthz and the sweep.
WORKER_HEARTBEAT_SECONDS: float = env.float("WORKER_HEARTBEAT_SECONDS", default=2.0)
# After this many tries (worker killed, database errors, ...) an upload is marked failed instead of retried again.
CLASSIFY_MAX_ATTEMPTS: int = env.int("CLASSIFY_MAX_ATTEMPTS", default=8)

# --- Celery ---------------------------------------------------------------------------------------------------
# Unset: no broker, classification runs in the web process right after the upload is saved. The one switch:
# phoneapp/services/dispatch.py decides from it where every task runs (no eager mode on top of it).
CELERY_BROKER_URL: str = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup closes the database connection before and after every task unless told it may reuse it;
# a new PostgreSQL connection costs ~3.3 ms of server and ~0.6 ms of worker CPU (measured), about a tenth of an
# upload's whole cost. Reused up to this many tasks, and checked before each one as Django checks it per request
# (CONN_MAX_AGE, CONN_HEALTH_CHECKS; phoneapp/celery.py), so a database restart costs one reconnect, not a task.
CELERY_DB_REUSE_MAX: int = env.int("CELERY_DB_REUSE_MAX", default=1000)
# Keep Django's LOGGING in workers too: Celery's own root handler would drop the events' fields (upload id,
# timings, model version) and ignore LOG_FORMAT=json.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_DEFAULT_QUEUE = "classify"
CELERY_TASK_ROUTES = {
    # The zero-shot model's overlays (the others are drawn on request) wait behind verdicts: run a worker with
    # `-Q classify,heatmaps` or a separate `-Q heatmaps` one.
    "phoneapp.tasks.upload_heatmap_compute_task": {"queue": "heatmaps"},
}
# With acks_late a task whose worker died is redelivered after this many seconds; keep it above the longest
# task so a slow but alive worker is not doubled up.
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, int] = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=600),
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
}
# A message past the visibility timeout is put back in the queue only when a worker next looks for such messages:
# by kombu's own schedule every ~100 s (a look every 10 s that scans Redis every 10th time), so a dead worker's task
# comes back up to 100 s after the timeout. Set (seconds): every worker scans that often instead. The live tests
# use 1 s with an 8-s timeout so a redelivery takes seconds, not minutes.
_unacked_restore_seconds = env.int("CELERY_UNACKED_RESTORE_SECONDS", default=0)
if _unacked_restore_seconds > 0:
    CELERY_BROKER_TRANSPORT_OPTIONS |= {
        "unacked_restore_interval": _unacked_restore_seconds,
        "unacked_restore_throttle": 1,
    }
# Sending must not hang a web request when Redis is down: the upload stays pending and is swept up later.
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A worker that lost Redis tries again forever (Celery's default gives up after 100 tries, about 46 minutes, and the
# worker exits): an outage of any length ends with the workers back at work, without a person.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_BEAT_SCHEDULE = {
    # Does nothing unless RETENTION_DAYS is set.
    "delete-expired-uploads": {"task": "phoneapp.tasks.uploads_delete_expired_task", "schedule": 3600.0},
    "forget-expired-idempotency-keys": {
        "task": "phoneapp.tasks.upload_requests_forget_expired_task",
        "schedule": 3600.0,
    },
    # Sessions past their end (signed out, or of a deleted account) leave the database; `clearsessions` by hand.
    "clear-expired-sessions": {"task": "phoneapp.tasks.sessions_clear_expired_task", "schedule": 86400.0},
    "requeue-pending-uploads": {
        "task": "phoneapp.tasks.uploads_requeue_stale_task",
        "schedule": SWEEP_INTERVAL_SECONDS,
        # A sweep not started by the next one's turn is dropped: sweeps never pile up behind a slow worker.
        "options": {"expires": SWEEP_INTERVAL_SECONDS},
    },
}

# --- REST framework -------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: an unauthenticated request gets 401 with "WWW-Authenticate: Token" (DRF answers 403 when the
    # first class is session authentication, which has no such header).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "phoneapp.auth_backends.HashedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # DRF's three, its JSON parser refusing JSON nested too deeply with 400 rather than a 500 (phoneapp/client_json.py).
    "DEFAULT_PARSER_CLASSES": [
        "phoneapp.api.parsers.DepthSafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": HISTORY_PAGE_SIZE,
    # JSON for programs; a browser asking for HTML gets DRF's browsable API.
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "phoneapp.api.errors.exception_handler",
}

# OpenAPI 3 schema at /api/schema/, Swagger UI at /api/docs/ and ReDoc at /api/redoc/, their JavaScript served from
# this app's static files (drf-spectacular-sidecar), never from a CDN.
SPECTACULAR_SETTINGS = {
    "TITLE": "phone-check API",
    "DESCRIPTION": (
        "Upload pictures and read whether each shows a mobile phone. Authenticate with "
        "`Authorization: Token <key>` (get a key from `POST /api/token/` or the 'Your API token' page) or with a "
        'signed-in browser session. Errors are JSON, `{"error": "..."}`. Besides the answers each operation '
        "lists, any may answer 405 (a method it does not take) and 406 (an `Accept` header asking for other than "
        "JSON; the picture endpoints answer their bytes whatever it asks)."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # A nullable choice is its enum with "nullable: true" (and null listed), not a oneOf with a NullEnum
    # ("enum: [null]" without "nullable", which OpenAPI 3.0 does not allow and some code generators refuse).
    "ENUM_ADD_EXPLICIT_BLANK_NULL_CHOICE": False,
    # label, final_label and reviewed_label share one enum, named for what it is.
    "ENUM_NAME_OVERRIDES": {"LabelEnum": "phoneapp.models.Label.choices"},
}

# --- Security (production mode) -------------------------------------------------------------------------------
# Wrong passwords allowed per account and per client address in a window, on every login door (page, admin, API
# token); past it every attempt is refused with 429 until the window ends. Counted in the default cache.
LOGIN_FAILURE_LIMIT: str = env.str("LOGIN_FAILURE_LIMIT", default="10/minute")
# The pages load only their own scripts, styles and pictures (previews of chosen files are blob: URLs).
CONTENT_SECURITY_POLICY: str = env.str(
    "CONTENT_SECURITY_POLICY",
    default="default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
)
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# A load balancer's health probe speaks plain HTTP inside the network: it must get the 200/503 body, not a 301.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
# Both on by default in production, as Django's deploy checks ask; an operator whose other subdomains still serve
# plain HTTP, or who will not commit the domain to browsers' preload lists, turns them off.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_TLS_PROXY", default=False) else None
X_FRAME_OPTIONS = "DENY"

# --- Logging --------------------------------------------------------------------------------------------------
LOG_LEVEL: str = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT: str = env.str("LOG_FORMAT", default="plain")  # "plain" or "json"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": FORMATTERS,
    "filters": {
        "client_errors_without_traceback": {"()": "phoneapp.log_format.ClientErrorsWithoutTraceback"},
        "unhealthy_probes_not_logged": {"()": "phoneapp.log_format.UnhealthyProbesNotLogged"},
        "broker_outages_without_traceback": {"()": "phoneapp.log_format.BrokerOutagesWithoutTraceback"},
        "routine_sweeps_at_debug": {"()": "phoneapp.log_format.RoutineSweepsAtDebug"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"level": "INFO"},
        "django.request": {
            "level": "INFO",
            "filters": ["client_errors_without_traceback", "unhealthy_probes_not_logged"],
        },
        "celery": {"level": "INFO"},
        "celery.beat": {"level": "INFO", "filters": ["broker_outages_without_traceback", "routine_sweeps_at_debug"]},
        "celery.worker.strategy": {"filters": ["routine_sweeps_at_debug"]},
        "celery.app.trace": {"filters": ["routine_sweeps_at_debug"]},
        "phoneapp": {"level": LOG_LEVEL, "propagate": True},
        "inference": {"level": LOG_LEVEL, "propagate": True},
    },
}
