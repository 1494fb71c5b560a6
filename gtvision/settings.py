"""GT-Vision settings: everything comes from the environment (see README, "Configuration")."""

import secrets
import socket
import warnings
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.utils.translation import gettext_lazy as _

from gtvision.env import env_bool, env_float, env_int, env_list, env_path, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = env_path("GTV_DATA_DIR", BASE_DIR / "var")
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_from_file(name: str, factory) -> str:
    """Read a generated secret from the data directory, creating it on first run."""
    path = DATA_DIR / name
    if not path.exists():
        path.write_text(factory())
        path.chmod(0o600)
    return path.read_text().strip()


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY") or _secret_from_file(
    "django-secret.key", lambda: secrets.token_urlsafe(50)
)
# Key(s) for camera credentials at rest, comma separated (first one encrypts; all decrypt).
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEY", []) or [
    _secret_from_file("field-encryption.key", _fernet_key)
]
PUBLIC_URL = env_str("PUBLIC_URL", "http://127.0.0.1:8000")


def _ed25519_pem() -> str:
    from gtvision.crypto import new_signing_key_pem

    return new_signing_key_pem()


# Ed25519 private key (PEM, PKCS#8) signing clips' chain-of-custody manifests (docs/lgpd.md)
CUSTODY_SIGNING_KEY = env_str("CUSTODY_SIGNING_KEY") or _secret_from_file(
    "custody-signing.key", _ed25519_pem
)

# --- Security: hosts, proxies, HTTPS, login throttling, CSP (docs/security.md) -------------
_PUBLIC = urlsplit(PUBLIC_URL)
_PUBLIC_HOST = _PUBLIC.hostname or ""
PUBLIC_ORIGIN = f"{_PUBLIC.scheme}://{_PUBLIC.netloc}"
PUBLIC_HTTPS = _PUBLIC.scheme == "https"
ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS",
    list(
        dict.fromkeys(
            h
            for h in [f"[{_PUBLIC_HOST}]" if ":" in _PUBLIC_HOST else _PUBLIC_HOST]
            + ["localhost", "127.0.0.1", "[::1]"]
            if h
        )
    ),
)
CSRF_TRUSTED_ORIGINS = list(dict.fromkeys([PUBLIC_ORIGIN, *env_list("CSRF_TRUSTED_ORIGINS", [])]))
# Reverse proxies (IPs or CIDRs) whose X-Forwarded-For/-Proto are believed; empty: none.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if TRUSTED_PROXIES else None
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if PUBLIC_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", PUBLIC_HTTPS)
X_FRAME_OPTIONS = "DENY"
LOGIN_FAILURE_WINDOW_S = env_int("LOGIN_FAILURE_WINDOW_S", 15 * 60)
LOGIN_MAX_FAILURES_PER_USERNAME = env_int("LOGIN_MAX_FAILURES_PER_USERNAME", 5)
LOGIN_MAX_FAILURES_PER_IP = env_int("LOGIN_MAX_FAILURES_PER_IP", 30)
# Content-Security-Policy of every response (gtvision.middleware); hls.js needs blob: for its
# worker and MSE media. ws(s) to the page's own host and the MediaMTX origins are added there.
CONTENT_SECURITY_POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:", "blob:"],
    "media-src": ["'self'", "blob:"],
    "worker-src": ["'self'", "blob:"],
    "connect-src": ["'self'"],
    "font-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "channels_postgres",
    "procrastinate.contrib.django",
    "gtvision",
    "admin_ctx",
    "cidades",
    "streaming",
    "recordings",
    "lpr",
]

MIDDLEWARE = [
    "gtvision.db_pool.ReleaseConnectionsMiddleware",  # streamed bodies hold no DB connection
    "gtvision.middleware.RequestObservabilityMiddleware",  # X-Request-ID, access log, latency
    "gtvision.middleware.TrustedProxyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "gtvision.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "gtvision.urls"
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
            ],
        },
    },
]
WSGI_APPLICATION = "gtvision.wsgi.application"
ASGI_APPLICATION = "gtvision.asgi.application"

# --- Database: DATABASE_URL, else the embedded PostgreSQL in DATA_DIR ---------------------
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL)}
else:
    from gtvision import embedded_db

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql"}}
        DATABASES["default"].update(embedded_db.ensure_running(DATA_DIR))
if env_str("GTV_DATABASE_NAME"):  # e.g. a test database, for processes started by tests
    DATABASES["default"]["NAME"] = env_str("GTV_DATABASE_NAME")
# django-prometheus's PostgreSQL backend: Django's own (pool included) plus the django_db_*
# metrics on /metrics (docs/observability.md).
DATABASES["default"]["ENGINE"] = "django_prometheus.db.backends.postgresql"
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env_int("DB_CONNECT_TIMEOUT", 5)
DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME") or None}
# One pool per process: a request borrows a connection and gives it back at its end
# (CONN_MAX_AGE 0), at most DB_POOL_MAX_SIZE open (README, "Database connections").
# DB_POOL_MAX_SIZE=0: no pool, a connection per request (e.g. behind PgBouncer).
DATABASES["default"]["CONN_MAX_AGE"] = 0
DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 10)
if DB_POOL_MAX_SIZE > 0:
    from gtvision.db_pool import pool_options

    DATABASES["default"]["OPTIONS"]["pool"] = pool_options(
        min_size=env_int("DB_POOL_MIN_SIZE", 2),
        max_size=DB_POOL_MAX_SIZE,
        timeout=env_float("DB_POOL_TIMEOUT", 20.0),
        max_idle=env_float("DB_POOL_MAX_IDLE", 300.0),
    )
# channels_postgres runs some of its queries through this alias: the same database (a pool of
# its own with no idle minimum: no connection is kept open by a process that never uses it).
DATABASES["channels_postgres"] = {
    **DATABASES["default"],
    "OPTIONS": {**DATABASES["default"]["OPTIONS"]},
    "TEST": {"MIRROR": "default"},
}
if DB_POOL_MAX_SIZE > 0:
    DATABASES["channels_postgres"]["OPTIONS"]["pool"] = {
        **DATABASES["default"]["OPTIONS"]["pool"],
        "min_size": 0,
        "name": "gtvision-channels",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "admin_ctx.User"
AUTHENTICATION_BACKENDS = ["gtvision.login_guard.GuardedModelBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/"
LOGIN_REDIRECT_URL = "/dashboard/"
LOGOUT_REDIRECT_URL = "/"

LANGUAGE_CODE = "pt-br"
LANGUAGES = [("pt-br", _("Portuguese (Brazil)")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "America/Sao_Paulo"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- API --------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "admin_ctx.tokens.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "gtvision.drf.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "gtvision.drf.exception_handler",
    # JSON only: no form/multipart parsing anywhere in the API (one input format to validate).
    "DEFAULT_PARSER_CLASSES": ["gtvision.parsers.JSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DATETIME_FORMAT": "iso-8601",
}
# Largest request body accepted (JSON bodies are small): larger is a 413 on the API.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 1024 * 1024)
SPECTACULAR_SETTINGS = {
    "TITLE": "GT-Vision VMS API",
    "DESCRIPTION": "Video management for Brazilian municipalities.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the app's own static files (drf-spectacular-sidecar): no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "gtvision.drf.add_error_responses",
    ],
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "CameraStatusEnum": "cidades.models.Camera.Status",
        "StreamStatusEnum": "streaming.models.Stream.Status",
    },
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", 1)),
    "UPDATE_LAST_LOGIN": True,
    "TOKEN_REFRESH_SERIALIZER": "admin_ctx.tokens.RefreshSerializer",
}

# --- Caches (per process unless REDIS_URL; login throttling lives in PostgreSQL) ---------
REDIS_URL = env_str("REDIS_URL")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- Channels: channels_postgres on the same database, channels_redis with REDIS_URL -------
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # Pub/sub: a group_send is one PUBLISH that each process fans out to its own
            # consumers (the list-based core layer pops one message per consumer: 330 ms p99
            # for 500 clients of one group against 20 ms for a plain PUBLISH).
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "gtvision.channel_layer.PostgresChannelLayer",
            "CONFIG": {
                **DATABASES["default"],
                "TIME_ZONE": None,
                "AUTOCOMMIT": True,
                "ATOMIC_REQUESTS": False,
                "CONN_MAX_AGE": 0,
                # Expired messages and group rows of dead processes: removed this often.
                "janitor_interval": env_float("CHANNEL_LAYER_JANITOR_S", 30.0),
            },
        }
    }

# --- Logging ----------------------------------------------------------------------------
# LOG_FORMAT=json: one JSON object per line, with request/user/prefeitura/camera ids
# (gtvision/logging_context.py); "text" (default): readable lines.
LOG_FORMAT = env_str("LOG_FORMAT", "text").lower()
from gtvision.logging_context import logging_config  # noqa: E402

LOGGING = logging_config(LOG_FORMAT, env_str("LOG_LEVEL", "INFO"))

# --- Metrics (gtvision/metrics/, docs/observability.md) ----------------------------------
# /metrics answers only "Authorization: Bearer <METRICS_TOKEN>"; unset: loopback clients only.
METRICS_TOKEN = env_str("METRICS_TOKEN")
METRICS_FOOTAGE_CACHE_S = env_float("METRICS_FOOTAGE_CACHE_S", 60.0)
# /health fails when a recorded camera has had no segment indexed for this long.
RECORDING_LAG_MAX_S = env_float("RECORDING_LAG_MAX_S", 120.0)

# --- Product settings -------------------------------------------------------------------
PLAN_RETENTION_DAYS = {"basico": 7, "padrao": 15, "premium": 30}

# --- Media plane --------------------------------------------------------------------------
MEDIA_ENGINE = env_str("MEDIA_ENGINE", "embedded")  # "embedded" (FFmpeg) or "mediamtx"
LIVE_DIR = env_path("GTV_LIVE_DIR", DATA_DIR / "live")
HLS_SEGMENT_SECONDS = env_int("HLS_SEGMENT_SECONDS", 2)
HLS_LIST_SIZE = env_int("HLS_LIST_SIZE", 6)
STREAM_STALL_TIMEOUT_S = env_float("STREAM_STALL_TIMEOUT_S", 6.0)
STREAM_ANALYZE_S = env_float("STREAM_ANALYZE_S", 1.0)  # input probing cap: faster start
STREAM_START_GRACE_S = env_float("STREAM_START_GRACE_S", 10.0)
STREAM_MAX_BACKOFF_S = env_float("STREAM_MAX_BACKOFF_S", 30.0)
SUPERVISOR_INTERVAL_S = env_float("SUPERVISOR_INTERVAL_S", 1.0)
SUPERVISOR_METRICS_INTERVAL_S = env_float("SUPERVISOR_METRICS_INTERVAL_S", 2.0)
SUPERVISOR_HEARTBEAT_STALE_S = env_float("SUPERVISOR_HEARTBEAT_STALE_S", 30.0)
# Recorder nodes (docs/scaling.md): each media supervisor is a node that pulls the cameras it
# holds a lease on. Its name must be unique among running nodes (default: the host name).
NODE_NAME = env_str("GTV_NODE_NAME") or socket.gethostname()
NODE_CAPACITY = env_int("GTV_NODE_CAPACITY", 200)  # cameras
# Set: the node serves its live HLS there to the web processes (streaming/livehop.py).
NODE_INTERNAL_URL = env_str("GTV_NODE_INTERNAL_URL")
LEASE_TTL_S = env_float("LEASE_TTL_S", 20.0)
LEASE_REBALANCE_PER_TICK = env_int("LEASE_REBALANCE_PER_TICK", 2)
# A stream opened for viewers stops this long after its last viewer's keep-alive.
VIEWER_IDLE_SECONDS = env_int("VIEWER_IDLE_SECONDS", 45)
# FFmpeg's source files (camera URLs, 0600 in a 0700 directory): off every command line.
MEDIA_RUN_DIR = env_path("GTV_RUN_DIR", DATA_DIR / "run")
JOB_WORKER_HEARTBEAT_S = env_float("JOB_WORKER_HEARTBEAT_S", 5.0)
JOB_WORKER_HEARTBEAT_STALE_S = env_float("JOB_WORKER_HEARTBEAT_STALE_S", 30.0)
JOB_WORKER_MAX_BACKOFF_S = env_float("JOB_WORKER_MAX_BACKOFF_S", 30.0)
MEDIA_VIEW_TOKEN_MAX_AGE_S = env_int("MEDIA_VIEW_TOKEN_MAX_AGE_S", 3600)
MEDIAMTX_API_URL = env_str("MEDIAMTX_API_URL", "http://127.0.0.1:9997")
MEDIAMTX_API_USER = env_str("MEDIAMTX_API_USER", "gtvision")
MEDIAMTX_API_PASSWORD = env_str("MEDIAMTX_API_PASSWORD")
MEDIAMTX_PUBLIC_HLS_URL = env_str("MEDIAMTX_PUBLIC_HLS_URL", "http://127.0.0.1:8888")
MEDIAMTX_PUBLIC_WEBRTC_URL = env_str("MEDIAMTX_PUBLIC_WEBRTC_URL", "http://127.0.0.1:8889")
MEDIAMTX_PUBLIC_RTSP_URL = env_str("MEDIAMTX_PUBLIC_RTSP_URL", "rtsp://127.0.0.1:8554")
MEDIAMTX_INTERNAL_RTSP_URL = env_str("MEDIAMTX_INTERNAL_RTSP_URL", "rtsp://127.0.0.1:8554")
MEDIAMTX_INTERNAL_USER = env_str("MEDIAMTX_INTERNAL_USER", "gtvision-recorder")
MEDIAMTX_INTERNAL_PASSWORD = env_str("MEDIAMTX_INTERNAL_PASSWORD")

# --- Recordings ---------------------------------------------------------------------------
RECORDINGS_DIR = env_path("GTV_RECORDINGS_DIR", DATA_DIR / "recordings")
CLIPS_DIR = env_path("GTV_CLIPS_DIR", DATA_DIR / "clips")
RECORDING_SEGMENT_SECONDS = env_int("RECORDING_SEGMENT_SECONDS", 10)
CLIP_MAX_SECONDS = env_int("CLIP_MAX_SECONDS", 3600)
CLIP_EXPIRY_DAYS = env_int("CLIP_EXPIRY_DAYS", 30)
RETENTION_DISK_FLOOR_BYTES = env_int("RETENTION_DISK_FLOOR_BYTES", 5 * 1024**3)
RETENTION_DISK_FLOOR_KEEP_S = env_int("RETENTION_DISK_FLOOR_KEEP_S", 3600)
RECORDING_SEGMENT_MAX_SECONDS = env_int("RECORDING_SEGMENT_MAX_SECONDS", 600)
RECORDING_GAP_TOLERANCE_S = env_float("RECORDING_GAP_TOLERANCE_S", 1.0)
RECORDING_TOKEN_MAX_AGE_S = env_int("RECORDING_TOKEN_MAX_AGE_S", 6 * 3600)
PLAYBACK_MAX_SECONDS = env_int("PLAYBACK_MAX_SECONDS", 24 * 3600)
CLIP_STALE_SECONDS = env_int("CLIP_STALE_SECONDS", 3600)
# A playback token lives for its playlist's duration plus this margin, at most
# RECORDING_TOKEN_MAX_AGE_S; logout and password change revoke it (User.tokens_valid_after).
RECORDING_TOKEN_MARGIN_S = env_int("RECORDING_TOKEN_MARGIN_S", 1800)
# check_footage never touches a file modified less than this many seconds ago.
FOOTAGE_CHECK_GRACE_S = env_int("FOOTAGE_CHECK_GRACE_S", 120)
# Footage tiers (docs/storage.md): with S3_ENDPOINT_URL and S3_BUCKET set, closed segments
# older than FOOTAGE_HOT_SECONDS (0: as soon as indexed) move to the bucket. Unset: local only.
S3_ENDPOINT_URL = env_str("S3_ENDPOINT_URL")
S3_BUCKET = env_str("S3_BUCKET")
S3_ACCESS_KEY_ID = env_str("S3_ACCESS_KEY_ID")
S3_SECRET_ACCESS_KEY = env_str("S3_SECRET_ACCESS_KEY")
S3_REGION = env_str("S3_REGION", "us-east-1")
S3_PREFIX = env_str("S3_PREFIX")  # object keys under this prefix ("" or e.g. "gtv/")
S3_CONNECT_TIMEOUT_S = env_float("S3_CONNECT_TIMEOUT_S", 3.0)
S3_READ_TIMEOUT_S = env_float("S3_READ_TIMEOUT_S", 30.0)
S3_MAX_ATTEMPTS = env_int("S3_MAX_ATTEMPTS", 2)
S3_MULTIPART_THRESHOLD_BYTES = env_int("S3_MULTIPART_THRESHOLD_BYTES", 16 * 1024**2)
S3_UPLOAD_CONCURRENCY = env_int("S3_UPLOAD_CONCURRENCY", 4)  # segments uploaded at once
FOOTAGE_HOT_SECONDS = env_int("FOOTAGE_HOT_SECONDS", 86400)
# Segments moved per tiering run (oldest first) and per batch (one UPDATE).
FOOTAGE_TIER_MAX_PER_RUN = env_int("FOOTAGE_TIER_MAX_PER_RUN", 20000)
FOOTAGE_TIER_BATCH = env_int("FOOTAGE_TIER_BATCH", 100)
FOOTAGE_TIER_RUN_BUDGET_S = env_float("FOOTAGE_TIER_RUN_BUDGET_S", 30.0)  # then the next run
# Runs scan only recently closed rows; a full scan (rows indexed late, after an outage) this often.
FOOTAGE_TIER_SWEEP_S = env_int("FOOTAGE_TIER_SWEEP_S", 6 * 3600)
# Bytes of bucket segments one snapshot or clip export may download (private temporary copies
# FFmpeg reads; recordings.segment_io.local_copy).
SEGMENT_COPY_MAX_BYTES = env_int("SEGMENT_COPY_MAX_BYTES", 8 * 1024**3)
# Clip exports waiting or running at once, and bytes of kept clips (429 past them).
CLIP_MAX_PENDING_PER_USER = env_int("CLIP_MAX_PENDING_PER_USER", 3)
CLIP_MAX_PENDING_PER_PREFEITURA = env_int("CLIP_MAX_PENDING_PER_PREFEITURA", 10)
CLIP_MAX_BYTES_PER_PREFEITURA = env_int("CLIP_MAX_BYTES_PER_PREFEITURA", 20 * 1024**3)
