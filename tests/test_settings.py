"""Settings read from MLFLOWLET_* variables."""

from __future__ import annotations

import pytest


def test_a_bad_number_of_seconds_in_a_setting_names_the_variable(monkeypatch):
    from mlflowlet.errors import ConfigError
    from mlflowlet.settings import get_settings

    monkeypatch.setenv("MLFLOWLET_HEARTBEAT_TIMEOUT", "5m")
    with pytest.raises(ConfigError, match=r"MLFLOWLET_HEARTBEAT_TIMEOUT='5m' is not a positive"):
        get_settings()
    monkeypatch.setenv("MLFLOWLET_HEARTBEAT_TIMEOUT", "90")
    monkeypatch.setenv("MLFLOWLET_FLUSH_INTERVAL", "0")
    with pytest.raises(ConfigError, match="MLFLOWLET_FLUSH_INTERVAL='0'"):
        get_settings()
    monkeypatch.setenv("MLFLOWLET_FLUSH_INTERVAL", "0.5")
    assert (get_settings().flush_interval, get_settings().heartbeat_timeout) == (0.5, 90.0)


def test_settings_follow_the_environment_at_every_read(monkeypatch):
    import os

    from mlflowlet.settings import Settings, get_settings

    for name in [k for k in os.environ if k.startswith("MLFLOWLET_")]:
        monkeypatch.delenv(name)
    assert get_settings() == Settings()
    monkeypatch.setenv("MLFLOWLET_PROJECT", "p2")
    monkeypatch.setenv("MLFLOWLET_MAX_LOG_BYTES", "10")
    settings = get_settings()
    assert (settings.project, settings.max_log_bytes) == ("p2", 10)
    monkeypatch.delenv("MLFLOWLET_PROJECT")
    assert get_settings().project == "default"
