"""Configuration classes, read from the environment (DESIGN.md "Configuration")."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = BASE_DIR / "instance"


def flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


def database_url(default: str) -> str:
    """DATABASE_URL with the psycopg 3 driver named, as hosting providers often give `postgres://`."""
    url = os.environ.get("DATABASE_URL") or default
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Config:
    SECRET_KEY = os.environ.get("SECRET_KEY")
    SQLALCHEMY_DATABASE_URI = database_url(f"sqlite:///{INSTANCE_DIR / 'campus.db'}")
    SQLALCHEMY_ENGINE_OPTIONS: dict = {}
    # A pooled PostgreSQL connection left unused longer than this is checked with a round trip
    # before it is used (a server restarted or a firewall that dropped it); one in steady use
    # is not, as that check would be one more round trip on every request and chat message.
    DATABASE_PING_IDLE_SECONDS = float(os.environ.get("DATABASE_PING_IDLE_SECONDS") or 5)
    # PostgreSQL connections each worker keeps open, and how many more it may open for a
    # burst (closed again as they come back, each a new server process: none by default, a
    # request beyond the kept ones waits for one). A gevent worker serves many requests at
    # once, each holding a connection until it has answered. PostgreSQL's default
    # max_connections of 100 fits gunicorn.conf.py's four workers on two cores.
    DATABASE_POOL_SIZE = int(os.environ.get("DATABASE_POOL_SIZE") or 20)
    DATABASE_MAX_OVERFLOW = int(os.environ.get("DATABASE_MAX_OVERFLOW") or 0)
    REDIS_URL = os.environ.get("REDIS_URL") or None
    # Rendered parts of pages kept in each worker (app/fragments.py): how many, and for how
    # long at most (they go stale only if a worker dies between a commit and its bump).
    FRAGMENT_ENTRIES = int(os.environ.get("FRAGMENT_ENTRIES") or 2000)
    FRAGMENT_SECONDS = float(os.environ.get("FRAGMENT_SECONDS") or 300)
    SEARCH_INDEX_DIR = os.environ.get("SEARCH_INDEX_DIR") or str(BASE_DIR / "search_index")
    # The search feed (app/search/indexer.py): how long a request waits for its own change
    # to be findable, how often the indexer looks at the feed unprompted (changes made on
    # other servers), how long a missing id is awaited, when /healthz says search is behind,
    # how long without a change before the batches' segments are folded into one, and how
    # long a change nobody waits for (an enrolment) may wait to be applied with those after it.
    SEARCH_WAIT_SECONDS = float(os.environ.get("SEARCH_WAIT_SECONDS") or 5)
    SEARCH_POLL_SECONDS = float(os.environ.get("SEARCH_POLL_SECONDS") or 1)
    SEARCH_GAP_SECONDS = float(os.environ.get("SEARCH_GAP_SECONDS") or 60)
    SEARCH_STALE_SECONDS = float(os.environ.get("SEARCH_STALE_SECONDS") or 30)
    SEARCH_FOLD_SECONDS = float(os.environ.get("SEARCH_FOLD_SECONDS") or 2)
    SEARCH_LAZY_SECONDS = float(os.environ.get("SEARCH_LAZY_SECONDS") or 0.25)
    SEARCH_INDEXER = flag("SEARCH_INDEXER", True)  # off: this process never indexes
    UPLOAD_DIR = os.environ.get("UPLOAD_DIR") or str(INSTANCE_DIR / "uploads")
    MAX_UPLOAD_MB = int(os.environ.get("MAX_UPLOAD_MB") or 50)
    # Every request body but an upload's: the largest form (a course's 10,000-character
    # description, percent-encoded) fits with room to spare. More is 413 before it is read.
    MAX_CONTENT_LENGTH = 256 * 1024
    TEACHER_SIGNUP_CODE = os.environ.get("TEACHER_SIGNUP_CODE") or None
    # How many reverse proxies in front set X-Forwarded-For/-Proto (0: none, the default).
    TRUSTED_PROXIES = int(os.environ.get("TRUSTED_PROXIES") or 0)

    # Cookies: never readable by scripts, not sent on cross-site sub-requests.
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_NAME = "remember_token"
    REMEMBER_COOKIE_DURATION = 60 * 60 * 24 * 30
    # A browser that signed in to an account may still sign in while strangers' failures have
    # locked it (OWASP's device cookies); sent to the sign-in page only.
    DEVICE_COOKIE_NAME = "campus_device"
    DEVICE_COOKIE_DURATION = 60 * 60 * 24 * 365
    DEVICE_COOKIE_SECURE = False

    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session
    WTF_CSRF_SSL_STRICT = False  # SameSite=Lax cookies already stop cross-site posts

    # Throttling. Login: per address by Flask-Limiter, per account by a lockout.
    RATELIMIT_STORAGE_URI = REDIS_URL or "memory://"
    # Exact windows: "10 in 5 seconds" never lets 20 through across a window's edge.
    RATELIMIT_STRATEGY = "moving-window"
    RATELIMIT_KEY_PREFIX = "campus"
    # A whole school may sign in from one address (its NAT) at nine o'clock: the per-address
    # limit is generous and stops floods; the per-account lockout stops guessing.
    LOGIN_ADDRESS_LIMIT = os.environ.get("LOGIN_ADDRESS_LIMIT") or "120 per minute; 2000 per hour"
    REGISTER_ADDRESS_LIMIT = (
        os.environ.get("REGISTER_ADDRESS_LIMIT") or "20 per minute; 200 per hour"
    )
    # Forgotten passwords: per address (429), and per account (more asks send nothing more).
    FORGOT_ADDRESS_LIMIT = os.environ.get("FORGOT_ADDRESS_LIMIT") or "20 per minute; 200 per hour"
    FORGOT_ACCOUNT_LIMIT = "5 per 15 minutes"
    # Every ask takes at least this long, whatever was typed, so that the time of the answer
    # does not tell which accounts exist (sending takes longer than finding nothing).
    FORGOT_MIN_SECONDS = 0.25
    LOGIN_ACCOUNT_LOCKOUT = "10 per 15 minutes"  # also each known browser's own lockout
    # Chat posts per person, the live socket and the form together (DESIGN.md "Security").
    CHAT_POST_LIMIT = "10 per 5 seconds"
    # Open live sockets (tabs) per person, on all workers together.
    SOCKETS_PER_PERSON = 10

    # The address people reach Campus at, for links in mail ("https://campus.school.example");
    # unset: the address of the request that caused the mail.
    PUBLIC_URL = os.environ.get("PUBLIC_URL") or None

    # Mail (DESIGN.md "E-mail"): SMTP, or the log when MAIL_SERVER is unset.
    MAIL_SERVER = os.environ.get("MAIL_SERVER") or None
    MAIL_PORT = int(os.environ.get("MAIL_PORT") or 25)
    MAIL_USE_TLS = flag("MAIL_USE_TLS")
    MAIL_USE_SSL = flag("MAIL_USE_SSL")
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME") or None
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD") or None
    MAIL_DEFAULT_SENDER = os.environ.get("MAIL_DEFAULT_SENDER") or "Campus <campus@localhost>"
    MAIL_SUPPRESS_SEND = False  # Flask-Mail would not send under TESTING; the tests need it to
    MAIL_TIMEOUT = 30  # seconds for the SMTP server to answer
    # The outbox's sender: woken by each commit that wrote mail, and every MAIL_POLL_SECONDS
    # for retries; a failed send waits MAIL_RETRY_SECONDS, doubling up to MAIL_RETRY_MAX_SECONDS,
    # and is given up after MAIL_MAX_ATTEMPTS (about two days at the defaults). A message
    # claimed by a sender that died is taken again after MAIL_CLAIM_TIMEOUT seconds.
    MAIL_POLL_SECONDS = float(os.environ.get("MAIL_POLL_SECONDS") or 15)
    MAIL_RETRY_SECONDS = float(os.environ.get("MAIL_RETRY_SECONDS") or 30)
    MAIL_RETRY_MAX_SECONDS = float(os.environ.get("MAIL_RETRY_MAX_SECONDS") or 3600)
    MAIL_MAX_ATTEMPTS = int(os.environ.get("MAIL_MAX_ATTEMPTS") or 60)
    MAIL_CLAIM_TIMEOUT = float(os.environ.get("MAIL_CLAIM_TIMEOUT") or 300)

    # Keep the rendered signed-out pages in memory (see app/web.py); off while editing templates.
    CACHE_VISITOR_PAGES = True

    # argon2id cost: RFC 9106's second recommended profile (64 MiB, 3 passes).
    PASSWORD_HASH_PROFILE = "RFC_9106_LOW_MEMORY"

    @staticmethod
    def check() -> None:
        """Refuse to start with a configuration that is unsafe for its environment."""


class DevelopmentConfig(Config):
    # A fixed key keeps `make run` sessions across restarts; never used in production.
    SECRET_KEY = os.environ.get("SECRET_KEY") or "campus-development-only-key"
    CACHE_VISITOR_PAGES = False
    TEMPLATES_AUTO_RELOAD = True


class TestingConfig(Config):
    TESTING = True
    SECRET_KEY = "campus-testing-key"
    SQLALCHEMY_DATABASE_URI = database_url("sqlite://")
    PASSWORD_HASH_PROFILE = "CHEAPEST"


class ProductionConfig(Config):
    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True
    DEVICE_COOKIE_SECURE = True
    PREFERRED_URL_SCHEME = "https"

    @staticmethod
    def check() -> None:
        if not os.environ.get("SECRET_KEY"):
            raise RuntimeError("SECRET_KEY must be set in production")


CONFIGS = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}
