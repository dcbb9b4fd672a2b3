"""The vocabulary index never loses a match: for any text and any substring of it (in any
case), the FTS5 query of the substring selects the text's vocabulary row."""

from __future__ import annotations

import sqlite3
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.store.search import trigram_query
from postroom.store.textindex import vocabulary

TEXT = st.text(
    alphabet=st.sampled_from("abcXYZ éÉßİı0_-. \n\tçÇ日本語ǅ\xa0\u2003—“\x1c"),
    min_size=1,
    max_size=60,
)


def index_of(text: str) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute(
        "CREATE VIRTUAL TABLE fts USING fts5("
        "words, headers UNINDEXED, body UNINDEXED, tokenize = 'trigram', detail = none)"
    )
    conn.execute("INSERT INTO fts (rowid, words) VALUES (1, ?)", (vocabulary("", text),))
    return conn


@settings(max_examples=300, deadline=None)
@given(TEXT, st.data())
def test_every_substring_selects_its_text(text, data) -> None:
    start = data.draw(st.integers(0, len(text) - 1))
    end = data.draw(st.integers(start + 1, len(text)))
    needle = text[start:end]
    needle = data.draw(st.sampled_from([needle, needle.upper(), needle.lower(), needle.title()]))
    if needle.lower() not in text.lower():  # case mapping changed it: not a substring any more
        return
    query = trigram_query(needle)
    if query is None:  # no word of three characters: texts are checked one by one
        return
    rows = index_of(text).execute("SELECT rowid FROM fts WHERE fts MATCH ?", (query,)).fetchall()
    assert rows == [(1,)]


def test_vocabulary_is_the_distinct_lower_cased_words() -> None:
    assert vocabulary("Subject: Hello", "hello, WORLD! hello again") == (
        "subject hello world again"
    )


def test_needles_without_a_long_word_scan() -> None:
    assert trigram_query("a b c") is None
    assert trigram_query("--") is None
    assert trigram_query("Hello wo") == '"hel" AND "ell" AND "llo"'


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(max_codepoint=127), max_size=40), max_size=3))
def test_ascii_texts_give_the_words_str_methods_give(texts) -> None:
    """Texts are split with bytes methods (faster); for ASCII, into the words str gives."""
    punctuation = str.maketrans(dict.fromkeys(string.punctuation.replace("_", ""), " "))
    expected: dict[str, None] = {}
    for text in texts:
        expected.update(dict.fromkeys(text.lower().translate(punctuation).split()))
    assert vocabulary(*texts) == " ".join(expected)


def test_other_white_space_only_makes_tokens_longer() -> None:
    assert (
        vocabulary("Caf\u00e9\u00a0CR\u00c8ME, br\u00fbl\u00e9e")
        == "caf\u00e9\u00a0cr\u00e8me br\u00fbl\u00e9e"
    )
