"""Parse once: header index, ENVELOPE, BODYSTRUCTURE, sections, preview, index text."""

from postroom.mime.message import ParsedMessage, parse
from postroom.mime.section import binary, header_values, section

__all__ = ["ParsedMessage", "binary", "header_values", "parse", "section"]
