"""Settings of the demo/test project, read from the environment with django-environ.

``DATABASE_URL`` picks the database (default: SQLite in WAL mode beside this file).
``DBOS_*`` variables tune the engine for tests and the crash tests' worker processes.
"""

from importlib.util import find_spec
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

SECRET_KEY = env("SECRET_KEY", default="django-dbos-demo-not-secret")
DEBUG = env.bool("DEBUG", default=True)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["*"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_dbos",
    "testproject.orders.apps.OrdersConfig",
    "tests",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "testproject.urls"

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
            ]
        },
    }
]

SQLITE_PATH = env("SQLITE_PATH", default=str(BASE_DIR / "db.sqlite3"))
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{SQLITE_PATH}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets readers run beside the one writer; IMMEDIATE takes the write lock up front so
        # two transactions never deadlock upgrading a read lock; the timeout waits out the writer.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # Tests share the database with worker processes and threads: a file, never :memory:.
    DATABASES["default"]["TEST"] = {
        "NAME": env("SQLITE_TEST_PATH", default=str(BASE_DIR / "test_db.sqlite3"))
    }
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"

DBOS = {
    "HEARTBEAT_INTERVAL": env.float("DBOS_HEARTBEAT_INTERVAL", default=5.0),
    "EXECUTOR_TIMEOUT": env.float("DBOS_EXECUTOR_TIMEOUT", default=30.0),
    "WORKER_THREADS": env.int("DBOS_WORKER_THREADS", default=8),
}
if env("DBOS_EXECUTOR_ID", default=""):
    DBOS["EXECUTOR_ID"] = env("DBOS_EXECUTOR_ID")
if env("DBOS_APPLICATION_VERSION", default=""):
    DBOS["APPLICATION_VERSION"] = env("DBOS_APPLICATION_VERSION")

# Django's Tasks framework on durable workflows (docs/tasks.md), where it is installed (Django 6,
# or the django-tasks backport of the "tasks"/"test" extras): "default" tasks go to the DBOS
# queue "tasks.default"; "tasks.serial" runs one at a time; "tasks.plain" has no priorities.
if find_spec("django.tasks") or find_spec("django_tasks"):
    INSTALLED_APPS.insert(INSTALLED_APPS.index("django_dbos") + 1, "django_dbos.tasks")
TASKS = {
    "default": {
        "BACKEND": "django_dbos.tasks.DBOSTaskBackend",
        "QUEUES": ["default", "tasks.serial", "tasks.plain"],
        "OPTIONS": {
            "queues": {
                "default": {"name": "tasks.default", "polling_interval_sec": 0.1},
                "tasks.serial": {"worker_concurrency": 1, "polling_interval_sec": 0.1},
                "tasks.plain": {"priority_enabled": False, "polling_interval_sec": 0.1},
            }
        },
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "django_dbos": {"handlers": ["console"], "level": env("DBOS_LOG_LEVEL", default="INFO")}
    },
}
