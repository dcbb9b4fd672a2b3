"""The connection layer shared by SMTP, IMAP and POP3 (DESIGN principle 2)."""
