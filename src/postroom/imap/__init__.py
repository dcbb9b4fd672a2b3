"""IMAP4rev1 (RFC 3501) and IMAP4rev2 (RFC 9051) server.

The sans-IO core (``framer``, ``parser``, ``search``, ``fetch``, ``seqset``, ``response``,
``core``, ``view``) turns bytes into commands and results into bytes; ``session`` and the
command modules are the asyncio glue that talks to the connection and the store.
"""
