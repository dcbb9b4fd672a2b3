"""Authentication: password hashing, SASL mechanisms and brute-force throttling.

Protocols use ``authenticator.Authenticator``; ``passwords`` is also used by the admin CLI to
create accounts.  ``sasl`` is sans-IO: the mechanisms never touch the store or a socket.
"""
