"""TOML configuration -> typed settings, and how a reload (SIGHUP) applies to them.

Every key is declared once below with its type and default; an unknown key or a wrong type is
a ConfigError that names the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import logging
import os
import socket
import tomllib
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from postroom import log

SERVICES = ("smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s")
STANDARD_PORTS = {
    "smtp": 25,
    "submission": 587,
    "submissions": 465,
    "imap": 143,
    "imaps": 993,
    "pop3": 110,
    "pop3s": 995,
}
# Used when the standard port may not be bound (not root): the standard port number + 2000
# for 25 -> 2525, otherwise 2000 + port (587 -> 2587).
FALLBACK_PORTS = {
    "smtp": 2525,
    "submission": 2587,
    "submissions": 2465,
    "imap": 2143,
    "imaps": 2993,
    "pop3": 2110,
    "pop3s": 2995,
}
IMPLICIT_TLS = frozenset({"submissions", "imaps", "pop3s"})


class ConfigError(Exception):
    """A configuration problem, reported as one line naming the key or file."""


@dataclass
class Listen:
    """Each entry a list of "host:port"; an empty list disables the service.  None means
    "the default": standard ports when they can be bound, else the fallback ports."""

    smtp: list[str] | None = None
    submission: list[str] | None = None
    submissions: list[str] | None = None
    imap: list[str] | None = None
    imaps: list[str] | None = None
    pop3: list[str] | None = None
    pop3s: list[str] | None = None


@dataclass
class TLS:
    cert: str | None = None  # PEM chain; absent: self-signed certificate in data_dir
    key: str | None = None


@dataclass
class Limits:
    message_size: int = 25 * 1024 * 1024  # bytes (SMTP SIZE, IMAP APPEND)
    recipients: int = 100  # RCPT per transaction (RFC 5321 §4.5.3.1.8 minimum)
    connections_per_ip: int = 50
    connections: int = 10000
    mime_depth: int = 100  # nesting of multipart / message/rfc822 parsed into structure
    mime_headers: int = 10000  # header fields indexed per part
    # Seconds a silent client keeps its session: RFC 5321 §4.5.3.2.7 asks an SMTP server for
    # at least 5 minutes, RFC 9051 §5.4 an IMAP autologout of at least 30, RFC 1939 §3 POP3 10.
    smtp_timeout: float = 300.0
    imap_timeout: float = 1800.0
    pop3_timeout: float = 600.0
    # Octets of one message line over SMTP: RFC 5321 says 1000, real mail is sometimes longer
    # and is kept intact up to this; a longer line refuses the message (554 5.6.0).
    data_line_length: int = 65536
    smtp_error_limit: int = 20  # 5xx replies before 421 (Postfix smtpd_hard_error_limit)
    smtp_junk_limit: int = 100  # NOOP, RSET, VRFY, HELP, HELO/EHLO without a message, before 421


@dataclass
class Auth:
    allow_plaintext: bool = False  # PLAIN/LOGIN/USER over an unencrypted connection
    failures_before_delay: int = 3
    max_delay: float = 15.0  # seconds, the growing delay after failures stops here
    lockout_failures: int = 10  # failures per IP or per account before a temporary lock
    lockout_seconds: float = 300.0
    cache_ttl: float = 3600.0  # seconds a verified password skips argon2 (0 disables)


@dataclass
class Store:
    backend: str = "sqlite"
    url: str | None = None  # postgresql://... for backend = "postgres"


@dataclass
class DNS:
    nameservers: list[str] = field(default_factory=list)  # "ip" or "ip:port"; empty: system


@dataclass
class Relay:
    routes: dict[str, str] = field(default_factory=dict)  # domain -> "host:port"
    smarthost: str | None = None  # "host:port"
    smarthost_user: str | None = None
    smarthost_password: str | None = None
    smarthost_tls: str = "starttls"  # "starttls", "implicit" or "none"


@dataclass
class Queue:
    first_retry: float = 300.0  # seconds
    max_retry: float = 4000.0  # seconds between attempts at most (Postfix maximal_backoff_time)
    give_up_after: float = 5 * 24 * 3600.0
    delay_warning_after: float = 4 * 3600.0  # 0 disables delay DSNs
    concurrency: int = 20  # outgoing connections in total
    per_destination: int = 4  # outgoing connections per destination host


@dataclass
class Settings:
    hostname: str = ""
    data_dir: str = "./postroom-data"
    user: str | None = None  # drop privileges to this user after binding when root
    log_level: str = "info"
    # Processes that serve SMTP (smtpd's process limit): None is one per CPU core when there
    # are several, 0 serves SMTP in the main process.
    smtp_workers: int | None = None
    listen: Listen = field(default_factory=Listen)
    tls: TLS = field(default_factory=TLS)
    limits: Limits = field(default_factory=Limits)
    auth: Auth = field(default_factory=Auth)
    store: Store = field(default_factory=Store)
    dns: DNS = field(default_factory=DNS)
    relay: Relay = field(default_factory=Relay)
    queue: Queue = field(default_factory=Queue)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def smtp_processes(self) -> int:
        """SMTP worker processes to start (0: none, SMTP runs in the main process)."""
        if self.smtp_workers is not None:
            return self.smtp_workers
        cores = os.cpu_count() or 1
        return cores if cores > 1 else 0


def default_hostname() -> str:
    name = socket.getfqdn()
    return name if name and name != "localhost" else socket.gethostname() or "localhost"


def load(path: str | os.PathLike[str] | None = None) -> Settings:
    """Load settings from ``path``, from $POSTROOM_CONFIG, or defaults when neither is set."""
    if path is None:
        path = os.environ.get("POSTROOM_CONFIG") or None
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    settings = _build(Settings, raw, "")
    _validate(settings)
    return settings


def from_dict(raw: dict[str, Any]) -> Settings:
    """Settings from an already-parsed mapping (tests, embedding)."""
    settings = _build(Settings, raw, "")
    _validate(settings)
    return settings


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix.rstrip('.')}: expected a table")
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    for key in raw:
        if key not in known:
            raise ConfigError(f"{prefix}{key}: unknown key")
    values = {}
    for f in fields(cls):
        if f.name not in raw:
            continue
        hint = hints[f.name]
        name = prefix + f.name
        if is_dataclass(hint):
            values[f.name] = _build(hint, raw[f.name], name + ".")
        else:
            values[f.name] = _check(hint, raw[f.name], name)
    return cls(**values)


def _check(hint: Any, value: Any, name: str) -> Any:
    origin = get_origin(hint)
    args = get_args(hint)
    if origin is not None and type(None) in args:  # Optional[X]
        if value is None:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check(inner[0], value, name)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{name}: expected a list, got {_kind(value)}")
        return [_check(args[0], v, f"{name}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a table, got {_kind(value)}")
        return {str(k): _check(args[1], v, f"{name}.{k}") for k, v in value.items()}
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{name}: expected a number, got {_kind(value)}")
        return float(value)
    if hint is int and isinstance(value, bool):
        raise ConfigError(f"{name}: expected an integer, got {_kind(value)}")
    if not isinstance(value, hint):
        raise ConfigError(
            f"{name}: expected {_KIND_NAMES.get(hint, hint.__name__)}, got {_kind(value)}"
        )
    return value


_KIND_NAMES = {
    str: "a string",
    int: "an integer",
    bool: "a boolean (true/false)",
    float: "a number",
}


def _kind(value: Any) -> str:
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def parse_hostport(text: str, name: str) -> tuple[str, int]:
    """``"127.0.0.1:25"``, ``"[::1]:25"`` or ``":25"`` (all addresses) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{name}: {text!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def _validate(s: Settings) -> None:
    if not s.hostname:
        s.hostname = default_hostname()
    for service in SERVICES:
        for i, entry in enumerate(getattr(s.listen, service) or ()):
            parse_hostport(entry, f"listen.{service}[{i}]")
    if (s.tls.cert is None) != (s.tls.key is None):
        raise ConfigError("tls: set both cert and key, or neither")
    for key in ("cert", "key"):
        path = getattr(s.tls, key)
        if path is not None and not os.access(path, os.R_OK):
            raise ConfigError(f"tls.{key}: cannot read {path}")
    if s.store.backend not in ("sqlite", "postgres"):
        raise ConfigError(f"store.backend: {s.store.backend!r} is not 'sqlite' or 'postgres'")
    if s.store.backend == "postgres" and not s.store.url:
        raise ConfigError("store.url: required when store.backend = 'postgres'")
    if s.limits.message_size <= 0:
        raise ConfigError("limits.message_size: must be positive")
    for key in (
        "recipients",
        "smtp_timeout",
        "imap_timeout",
        "pop3_timeout",
        "smtp_error_limit",
        "smtp_junk_limit",
    ):
        if getattr(s.limits, key) <= 0:
            raise ConfigError(f"limits.{key}: must be positive")
    if s.smtp_workers is not None and not 0 <= s.smtp_workers <= 256:
        raise ConfigError("smtp_workers: must be between 0 and 256")
    if s.limits.data_line_length < 1000:
        raise ConfigError("limits.data_line_length: must be at least 1000 (RFC 5321 §4.5.3.1.6)")
    if s.log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"log_level: {s.log_level!r} is not debug, info, warning or error")
    if s.queue.concurrency <= 0 or s.queue.per_destination <= 0:
        raise ConfigError("queue: concurrency and per_destination must be positive")
    if s.relay.smarthost_tls not in ("starttls", "implicit", "none"):
        raise ConfigError("relay.smarthost_tls: must be 'starttls', 'implicit' or 'none'")
    for domain, target in s.relay.routes.items():
        parse_hostport(target, f"relay.routes.{domain}")
    for i, ns in enumerate(s.dns.nameservers):
        if ":" in ns and not ns.startswith("["):
            parse_hostport(ns, f"dns.nameservers[{i}]")


RESTART_ONLY = ("data_dir", "user", "listen", "store", "smtp_workers")
RELOADABLE = ("limits", "auth", "relay", "queue", "dns")


def apply_reloadable(current: Settings, new: Settings) -> None:
    """Copy reloadable sections into the live settings objects in place, so every holder of a
    reference (sessions, authenticator, throttle) sees them."""
    for name in RESTART_ONLY:
        if getattr(current, name) != getattr(new, name):
            log.event("reload: restart needed to apply", logging.WARNING, key=name)
    for name in RELOADABLE:
        vars(getattr(current, name)).update(vars(getattr(new, name)))
    current.hostname = new.hostname
    current.log_level = new.log_level
    logging.getLogger("postroom").setLevel(new.log_level.upper())
