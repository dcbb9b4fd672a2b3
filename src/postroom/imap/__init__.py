"""IMAP4rev1 (RFC 3501) and IMAP4rev2 (RFC 9051) server.

The sans-IO core (``framer``, ``parser``, ``search``, ``fetch``, ``seqset``, ``response``,
``core``, ``view``, ``subject``, ``sort``, ``thread``, ``envelope``, ``deflate``) turns bytes
into commands and results into bytes; ``session`` and the command modules (``mailboxes``,
``messages``, ``ordering``, ``quota``, with ``shared`` for store reads sessions share) are
the asyncio glue that talks to the connection and the store.
"""
