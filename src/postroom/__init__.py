"""postroom: an all-in-one mail server (SMTP, submission, outbound queue, IMAP, POP3)."""

__version__ = "0.1.0"
