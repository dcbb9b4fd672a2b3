"""Bind as root, then serve as ``user`` (Postfix's and Dovecot's model).

The server process hands the data folder to the user, starts its SMTP workers (they run the
same interpreter, which the user may not be allowed to start), then becomes the user itself;
each worker becomes the user as soon as it has started.
"""

from __future__ import annotations

import os
import pwd

from postroom import log
from postroom.config import ConfigError


def account(name: str | None) -> pwd.struct_passwd | None:
    """The system user to serve as, when one is configured and we are root."""
    if not name or os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise ConfigError(f"user: no such system user {name!r}") from None


def hand_over(folder: os.PathLike[str], entry: pwd.struct_passwd) -> None:
    """Make everything in ``folder`` the user's."""
    for root, dirs, files in os.walk(folder):
        for item in (root, *(os.path.join(root, f) for f in dirs + files)):
            os.chown(item, entry.pw_uid, entry.pw_gid)


def become(entry: pwd.struct_passwd) -> None:
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    log.event("privileges dropped", user=entry.pw_name, pid=os.getpid())
