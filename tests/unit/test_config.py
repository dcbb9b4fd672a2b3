"""Configuration: the documented keys load, and every mistake is one clear line."""

from __future__ import annotations

import pytest

from postroom import config
from postroom.config import ConfigError


def write(tmp_path, text: str):
    path = tmp_path / "postroom.toml"
    path.write_text(text)
    return path


def test_defaults_without_file(monkeypatch):
    monkeypatch.delenv("POSTROOM_CONFIG", raising=False)
    s = config.load(None)
    assert s.data_dir == "./postroom-data"
    assert s.hostname
    assert s.listen.smtp is None  # standard or fallback ports, decided at bind time
    assert s.limits.message_size == 26214400
    assert s.store.backend == "sqlite"
    assert s.auth.allow_plaintext is False


def test_contract_keys(tmp_path):
    cert = tmp_path / "c.pem"
    key = tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("y")
    path = write(
        tmp_path,
        f"""
hostname = "mx.example.test"
data_dir = "{tmp_path}/data"
[listen]
smtp = ["127.0.0.1:2525"]
submission = ["127.0.0.1:2587"]
submissions = ["127.0.0.1:2465"]
imap = ["127.0.0.1:2143"]
imaps = ["127.0.0.1:2993"]
pop3 = []
pop3s = ["[::1]:2995"]
[tls]
cert = "{cert}"
key = "{key}"
[limits]
message_size = 1000
[store]
backend = "sqlite"
[auth]
allow_plaintext = true
[dns]
nameservers = ["127.0.0.1:5353"]
[relay]
routes = {{ "remote.test" = "127.0.0.1:2626" }}
""",
    )
    s = config.load(path)
    assert s.hostname == "mx.example.test"
    assert s.listen.smtp == ["127.0.0.1:2525"]
    assert s.listen.pop3 == []
    assert s.limits.message_size == 1000
    assert s.tls.cert == str(cert)
    assert s.relay.routes == {"remote.test": "127.0.0.1:2626"}
    assert config.parse_hostport(s.listen.pop3s[0], "x") == ("::1", 2995)


def test_env_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("POSTROOM_CONFIG", str(write(tmp_path, 'hostname = "env.test"\n')))
    assert config.load(None).hostname == "env.test"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hostnme = 'x'\n", "hostnme: unknown key"),
        ("[limits]\nmessage_sise = 1\n", "limits.message_sise: unknown key"),
        (
            "[limits]\nmessage_size = 'big'\n",
            "limits.message_size: expected an integer, got a string",
        ),
        ("[limits]\nmessage_size = true\n", "limits.message_size: expected an integer"),
        ("[listen]\nsmtp = '127.0.0.1:25'\n", "listen.smtp: expected a list"),
        ("[listen]\nsmtp = ['nowhere']\n", "listen.smtp[0]: 'nowhere' is not host:port"),
        (
            "[tls]\ncert = '/nonexistent/cert.pem'\nkey = '/nonexistent/key.pem'\n",
            "tls.cert: cannot read",
        ),
        ("[tls]\ncert = '/x'\n", "tls: set both cert and key"),
        ("[limits]\nsmtp_timeout = 0\n", "limits.smtp_timeout: must be positive"),
        ("[limits]\nsmtp_error_limit = -1\n", "limits.smtp_error_limit: must be positive"),
        ("[limits]\ndata_line_length = 998\n", "limits.data_line_length: must be at least 1000"),
        ("[store]\nbackend = 'mysql'\n", "store.backend"),
        ("[store]\nbackend = 'postgres'\n", "store.url: required"),
        ("listen = 3\n", "listen: expected a table"),
        ("hostname = [\n", "invalid TOML"),
    ],
)
def test_errors_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as info:
        config.load(write(tmp_path, text))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        config.load(tmp_path / "missing.toml")


def test_smtp_workers(monkeypatch):
    monkeypatch.setattr(config.os, "cpu_count", lambda: 4)
    assert config.from_dict({}).smtp_processes == 4  # one per core by default
    assert config.from_dict({"smtp_workers": 0}).smtp_processes == 0
    monkeypatch.setattr(config.os, "cpu_count", lambda: 1)
    assert config.from_dict({}).smtp_processes == 0  # one core: SMTP in the main process
    with pytest.raises(ConfigError, match="smtp_workers"):
        config.from_dict({"smtp_workers": -1})
