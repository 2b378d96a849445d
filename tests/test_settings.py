"""Settings: read once, typed, and a bad one stops start-up with one line naming it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bot import settings
from bot.settings import SettingsError


@pytest.fixture
def app_env(app_keys: tuple[str, str]) -> dict[str, str]:
    return {"GITHUB_APP_ID": "12345", "GITHUB_PRIVATE_KEY": app_keys[0], "GITHUB_WEBHOOK_SECRET": "shh-webhook"}


def test_defaults_without_credentials() -> None:
    s = settings.load({}, require_app=False)
    assert s.github_api_url == "https://api.github.com"
    assert s.database_url.startswith("sqlite:///")
    assert s.port == 3000 and not s.has_app and s.anthropic_api_key is None


def test_full_environment(app_env: dict[str, str]) -> None:
    env = app_env | {"GITHUB_API_URL": "https://ghe.example.com/api/v3/", "PORT": "8080",
                     "ANTHROPIC_API_KEY": "sk-ant-x", "ANTHROPIC_BASE_URL": "http://127.0.0.1:9/",
                     "DATABASE_URL": "postgresql://localhost/test"}
    s = settings.load(env)
    assert (s.app_id, s.port, s.has_app) == (12345, 8080, True)
    assert s.github_api_url == "https://ghe.example.com/api/v3"  # trailing slash dropped for URL joins
    assert s.anthropic_base_url == "http://127.0.0.1:9"
    assert "sk-ant-x" not in repr(s) and "shh-webhook" not in repr(s) and "PRIVATE KEY" not in repr(s)


def test_one_line_escaped_pem_is_accepted(app_env: dict[str, str]) -> None:
    env = app_env | {"GITHUB_PRIVATE_KEY": app_env["GITHUB_PRIVATE_KEY"].replace("\n", "\\n")}
    assert settings.load(env).private_key == app_env["GITHUB_PRIVATE_KEY"]


def test_key_from_path(app_env: dict[str, str], tmp_path) -> None:
    pem = tmp_path / "app.pem"
    pem.write_text(app_env.pop("GITHUB_PRIVATE_KEY"))
    assert settings.load(app_env | {"GITHUB_PRIVATE_KEY_PATH": str(pem)}).has_app
    with pytest.raises(SettingsError, match="GITHUB_PRIVATE_KEY_PATH cannot be read"):
        settings.load(app_env | {"GITHUB_PRIVATE_KEY_PATH": str(tmp_path / "missing.pem")})


@pytest.mark.parametrize(("change", "named"), [
    ({"GITHUB_APP_ID": ""}, "GITHUB_APP_ID"),
    ({"GITHUB_APP_ID": "twelve"}, "GITHUB_APP_ID"),
    ({"GITHUB_WEBHOOK_SECRET": ""}, "GITHUB_WEBHOOK_SECRET"),
    ({"GITHUB_PRIVATE_KEY": ""}, "GITHUB_PRIVATE_KEY"),
    ({"GITHUB_PRIVATE_KEY": "-----BEGIN RSA PRIVATE KEY-----\nnot-a-key-secret-material\n-----END RSA PRIVATE KEY-----"}, "GITHUB_PRIVATE_KEY"),
    ({"GITHUB_API_URL": "ftp://nope"}, "GITHUB_API_URL"),
    ({"PORT": "70000"}, "PORT"),
    ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
    ({"TRIAGE_LEAD_WEB_SEARCH": "sometimes"}, "TRIAGE_LEAD_WEB_SEARCH"),
    ({"TRIAGE_LEAD_WEB_SEARCHES_PER_RUN": "-1"}, "TRIAGE_LEAD_WEB_SEARCHES_PER_RUN"),
])
def test_bad_setting_is_named_without_its_value(app_env: dict[str, str], change: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as info:
        settings.load(app_env | change)
    message = str(info.value)
    assert message.startswith(named)
    assert "not-a-key-secret-material" not in message and "shh-webhook" not in message


def test_serve_with_missing_setting_prints_one_line(app_env: dict[str, str]) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"} | app_env | {"GITHUB_PRIVATE_KEY": "garbage-secret-value"}
    done = subprocess.run([sys.executable, "-m", "bot", "serve"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == "triage-lead: GITHUB_PRIVATE_KEY is not a PEM-encoded private key"
    assert "Traceback" not in done.stderr and "garbage-secret-value" not in done.stderr + done.stdout


@pytest.mark.parametrize(("env", "on", "cap"), [
    ({}, False, 0),  # off unless the operator turns it on
    ({"TRIAGE_LEAD_WEB_SEARCHES_PER_RUN": "9"}, False, 0),
    ({"TRIAGE_LEAD_WEB_SEARCH": "on"}, True, 5),
    ({"TRIAGE_LEAD_WEB_SEARCH": "ON", "TRIAGE_LEAD_WEB_SEARCHES_PER_RUN": "2"}, True, 2),
    ({"TRIAGE_LEAD_WEB_SEARCH": "off", "TRIAGE_LEAD_WEB_SEARCHES_PER_RUN": "2"}, False, 0),
    ({"TRIAGE_LEAD_WEB_SEARCH": "on", "TRIAGE_LEAD_WEB_SEARCHES_PER_RUN": "0"}, True, 0),
])
def test_web_search_is_an_operator_setting_off_by_default(env: dict[str, str], on: bool, cap: int) -> None:
    s = settings.load(env, require_app=False)
    assert (s.web_search, s.web_search_cap) == (on, cap)
