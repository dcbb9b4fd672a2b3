"""Property: any bytes, in any state, get well-formed replies and never an exception, and the
core's buffers stay bounded."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postroom.smtp.reply import AUTH_FAILED, LOCAL_ERROR, RECIPIENT_OK, RELAY_DENIED
from postroom.smtp.server import MAX_AUTH_LINE, AuthStart
from tests.smtp.core import Driver

REPLY = re.compile(rb"(?:\d{3}[ -][^\r\n]*\r\n)*")

FRAGMENTS = [
    b"EHLO x\r\n",
    b"HELO x\r\n",
    b"MAIL FROM:<a@b.example>\r\n",
    b"MAIL FROM:<> SIZE=10 BODY=8BITMIME\r\n",
    b"RCPT TO:<d@e.example> NOTIFY=NEVER\r\n",
    b"RCPT TO:<Postmaster>\r\n",
    b"DATA\r\n",
    b".\r\n",
    b"\r\n.\r\n",
    b"BDAT 3\r\n",
    b"BDAT 0 LAST\r\n",
    b"BDAT 5 LAST\r\n",
    b"AUTH PLAIN\r\n",
    b"AUTH LOGIN dXNlcg==\r\n",
    b"*\r\n",
    b"STARTTLS\r\n",
    b"RSET\r\n",
    b"QUIT\r\n",
    b"\r\n",
    b"\n",
    b"\r",
    b".",
    b"\x00",
    b"\xff",
]

chunks = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=200)), min_size=1, max_size=30
)


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    data=chunks,
    split=st.integers(min_value=1, max_value=64),
    secure=st.booleans(),
    accept=st.booleans(),
)
def test_any_bytes_in_any_state(data, split, secure, accept):
    d = Driver(secure=secure, mechanisms=("PLAIN", "LOGIN"), max_size=300, max_data_line=50)
    d.auto_tls = True
    if not accept:
        d.mail_reply = RELAY_DENIED
        d.data_reply = LOCAL_ERROR
    d.rcpt_reply = lambda e: RECIPIENT_OK if accept else RELAY_DENIED

    def auth(event):
        if isinstance(event, AuthStart) and accept:
            d.core.auth_challenge(b"challenge")
        elif accept:
            d.core.auth_succeeded("user@e.example")
        else:
            d.core.answer(AUTH_FAILED)

    d.auth = auth
    stream = b"".join(data)
    for i in range(0, len(stream), split):
        out = d.send(stream[i : i + split])
        assert REPLY.fullmatch(out), out
        assert len(d.core._in) <= MAX_AUTH_LINE + split
        reader = d.core._reader
        assert reader is None or len(reader._carry) <= 50 + split
    if not d.core.closed:
        d.core.shutting_down()
        assert d.core.data_to_send().startswith(b"421 ")


address_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), max_codepoint=0x2100), max_size=80
)


@settings(max_examples=500, deadline=None)
@given(
    path=address_text,
    params=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "SIZE",
                    "BODY",
                    "SMTPUTF8",
                    "RET",
                    "ENVID",
                    "AUTH",
                    "REQUIRETLS",
                    "NOTIFY",
                    "ORCPT",
                    "X-Y",
                ]
            ),
            st.none() | address_text,
        ),
        max_size=4,
    ),
)
def test_mail_and_rcpt_arguments_never_raise(path, params):
    d = Driver(secure=True)
    d.send(b"EHLO x\r\n")
    tail = "".join(f" {k}" + (f"={v}" if v is not None else "") for k, v in params)
    for verb in ("MAIL FROM:", "RCPT TO:"):
        line = f"{verb}<{path}>{tail}".replace("\r", "").replace("\n", "")
        out = d.send(line.encode("utf-8", "surrogatepass") + b"\r\n")
        assert REPLY.fullmatch(out) and out, out
