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


def test_one_setting_reads_as_the_whole_settings_do(monkeypatch):
    import os

    from mlflowlet.errors import ConfigError
    from mlflowlet.settings import Settings, get_setting, get_settings

    for name in [k for k in os.environ if k.startswith("MLFLOWLET_")]:
        monkeypatch.delenv(name)
    names = list(Settings.__dataclass_fields__)
    assert {n: get_setting(n) for n in names} == {n: getattr(Settings(), n) for n in names}
    monkeypatch.setenv("MLFLOWLET_FLUSH_INTERVAL", "0.25")
    monkeypatch.setenv("MLFLOWLET_MAX_LOG_BYTES", "12")
    monkeypatch.setenv("MLFLOWLET_PROJECT", "p3")
    assert {n: get_setting(n) for n in names} == {n: getattr(get_settings(), n) for n in names}
    assert (get_setting("flush_interval"), get_setting("max_log_bytes")) == (0.25, 12)
    monkeypatch.setenv("MLFLOWLET_HEARTBEAT_TIMEOUT", "-1")
    with pytest.raises(ConfigError, match="MLFLOWLET_HEARTBEAT_TIMEOUT='-1'"):
        get_setting("heartbeat_timeout")
    with pytest.raises(KeyError):
        get_setting("no_such_setting")


def test_a_run_flushes_at_the_interval_the_environment_sets(monkeypatch, tmp_path):
    from mlflowlet import new_runner

    monkeypatch.setenv("MLFLOWLET_DBPATH", str(tmp_path / "db"))
    monkeypatch.setenv("MLFLOWLET_FLUSH_INTERVAL", "7")
    monkeypatch.setenv("MLFLOWLET_HEARTBEAT_TIMEOUT", "100")
    seen = {}

    def handler(context):
        recorder = context._recorder
        seen.update(flush=recorder._flush_interval, heartbeat=recorder.heartbeat_every)

    assert new_runner().run(handler=handler).state == "completed"
    assert seen == {"flush": 7.0, "heartbeat": 25.0}
