"""settings.DBOS -> typed settings with defaults; bad values fall back, never crash."""

from __future__ import annotations

from django.test.utils import override_settings

from django_dbos.conf import DEFAULTS, dbos_settings


def test_defaults():
    with override_settings(DBOS={}):
        settings = dbos_settings()
    assert settings == DEFAULTS
    assert settings.HEARTBEAT_INTERVAL == 5.0
    assert settings.EXECUTOR_TIMEOUT == 30.0
    assert settings.MAX_RECOVERY_ATTEMPTS == 100
    assert settings.WORKFLOWS_MODULE == "workflows"
    assert settings.recovery_interval == 5.0


def test_overrides_apply_and_the_cache_follows_override_settings():
    with override_settings(DBOS={"WORKER_THREADS": 3, "ENCRYPTION_KEYS": ["k1", "k2"]}):
        assert dbos_settings().WORKER_THREADS == 3
        assert dbos_settings().ENCRYPTION_KEYS == ("k1", "k2")
    with override_settings(DBOS={"RECOVERY_INTERVAL": 2}):
        assert dbos_settings().WORKER_THREADS == DEFAULTS.WORKER_THREADS
        assert dbos_settings().recovery_interval == 2


def test_bad_values_fall_back_to_defaults_at_run_time():
    with override_settings(DBOS={"WORKER_THREADS": -1, "POLL_INTERVAL": "fast", "X": 1}):
        settings = dbos_settings()
    assert settings.WORKER_THREADS == DEFAULTS.WORKER_THREADS
    assert settings.POLL_INTERVAL == DEFAULTS.POLL_INTERVAL
    with override_settings(DBOS=["not", "a", "dict"]):
        assert dbos_settings() == DEFAULTS


def test_booleans_are_not_numbers():
    with override_settings(DBOS={"WORKER_THREADS": True}):
        assert dbos_settings().WORKER_THREADS == DEFAULTS.WORKER_THREADS
