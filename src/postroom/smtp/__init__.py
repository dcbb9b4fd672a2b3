"""SMTP: the sans-IO protocol core, its asyncio glue, policy and local delivery."""
