"""BODY and BODYSTRUCTURE (RFC 9051 §7.5.2) against hand-checked expectations."""

from __future__ import annotations

from postroom.mime import parse

EXT0 = b" NIL NIL NIL NIL"  # md5/params, disposition, language, location all absent


def _rfc3501_multipart() -> bytes:
    # Built to match the RFC 3501 §7.4.2 BODYSTRUCTURE example: a 1152-octet 23-line text part
    # and a 4554-octet 73-line base64 part (the CRLF before a delimiter is not part content).
    text = b"".join(b"x" * 48 + b"\r\n" for _ in range(22)) + b"y" * 52
    b64 = b"".join(b"A" * 61 + b"\r\n" for _ in range(72)) + b"A" * 18
    assert (len(text), len(b64)) == (1152, 4554)
    return (
        b'MIME-Version: 1.0\r\nContent-Type: MULTIPART/MIXED; BOUNDARY="--=x"\r\n\r\n'
        b"----=x\r\n\r\n" + text + b"\r\n----=x\r\n"
        b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII; NAME=cc.diff\r\n"
        b"Content-ID: <960723163407.20117h@cac.washington.edu>\r\n"
        b"Content-Description: Compiler diff\r\n"
        b"Content-Transfer-Encoding: BASE64\r\n\r\n" + b64 + b"\r\n----=x--\r\n"
    )


def test_rfc3501_multipart_example():
    p = parse(_rfc3501_multipart())
    assert p.body == (
        b'(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1152 23)'
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII" "NAME" "cc.diff") '
        b'"<960723163407.20117h@cac.washington.edu>" "Compiler diff" "BASE64" 4554 73) "MIXED")'
    )
    assert p.bodystructure == (
        b'(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1152 23' + EXT0 + b")"
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII" "NAME" "cc.diff") '
        b'"<960723163407.20117h@cac.washington.edu>" "Compiler diff" "BASE64" 4554 73'
        + EXT0
        + b') "MIXED" ("BOUNDARY" "--=x") NIL NIL NIL)'
    )


def test_simple_text():
    p = parse(b"Content-Type: text/plain; charset=utf-8; format=flowed\r\n\r\nab\r\ncd\r\n")
    assert p.bodystructure == (
        b'("TEXT" "PLAIN" ("CHARSET" "utf-8" "FORMAT" "flowed") NIL NIL "7BIT" 8 2' + EXT0 + b")"
    )
    assert p.body == b'("TEXT" "PLAIN" ("CHARSET" "utf-8" "FORMAT" "flowed") NIL NIL "7BIT" 8 2)'


def test_text_without_charset_gets_us_ascii():
    p = parse(b"Content-Type: text/html; name=a.html\r\n\r\n<p>x")
    assert p.body == b'("TEXT" "HTML" ("NAME" "a.html" "CHARSET" "US-ASCII") NIL NIL "7BIT" 4 1)'


def test_invalid_content_type_is_default():
    # RFC 2045 §5.2: a syntactically invalid Content-Type means text/plain; charset=us-ascii
    p = parse(b"Content-Type: garbage\r\n\r\nx")
    assert p.body == b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1 1)'


ALTERNATIVE = (
    b"From: a@b\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="alt"\r\n\r\n'
    b"This is a preamble.\r\n"
    b"--alt\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"Caf=C3=A9 menu\r\nline two=\r\n continued\r\n"
    b"--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b"<html><head><style>p{}</style></head><body><p>Caf&eacute; <b>menu</b></p></body></html>\r\n"
    b"--alt--\r\nepilogue\r\n"
)


def test_multipart_alternative():
    p = parse(ALTERNATIVE)
    assert p.bodystructure == (
        b'(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 37 3' + EXT0 + b")"
        b'("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "7BIT" 87 1' + EXT0 + b")"
        b' "ALTERNATIVE" ("BOUNDARY" "alt") NIL NIL NIL)'
    )
    # the index takes one alternative (plain), decoded
    assert p.text == "Caf\u00e9 menu\r\nline two continued"
    assert p.preview == "Caf\u00e9 menu line two continued"


def test_html_only_preview():
    p = parse(
        b"Content-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><head><title>t</title><script>var x='<b>';</script></head>"
        b"<body><p>Hello&nbsp;<i>there</i></p></body></html>"
    )
    assert p.preview == "Hello there"  # NBSP is whitespace too
    assert "var x" not in p.text


ATTACHMENT = (
    b"From: a@b\r\nContent-Type: multipart/mixed; boundary=mix\r\n\r\n"
    b"--mix\r\nContent-Type: text/plain\r\nContent-Language: en, de\r\n\r\nSee attached.\r\n"
    b"--mix\r\n"
    b"Content-Type: application/pdf;\r\n name*0*=utf-8''%E2%82%AC%20report;\r\n name*1=\".pdf\"\r\n"
    b"Content-Disposition: attachment;\r\n filename*=utf-8''%E2%82%AC%20report.pdf; size=4\r\n"
    b"Content-Transfer-Encoding: base64\r\nContent-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n"
    b"Content-Location: http://x.test/r.pdf\r\n\r\n"
    b"JVBE\r\nRi0=\r\n"
    b"--mix--\r\n"
)


def test_multipart_mixed_with_rfc2231_attachment():
    p = parse(ATTACHMENT)
    assert p.bodystructure == (
        b'(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 13 1 NIL NIL ("en" "de") NIL)'
        b'("APPLICATION" "PDF" ("NAME*" "utf-8\'\'%E2%82%AC%20report.pdf") NIL NIL "BASE64" 10 '
        b'"Q2hlY2sgSW50ZWdyaXR5IQ==" '
        b'("ATTACHMENT" ("FILENAME*" "utf-8\'\'%E2%82%AC%20report.pdf" "SIZE" "4")) NIL '
        b'"http://x.test/r.pdf")'
        b' "MIXED" ("BOUNDARY" "mix") NIL NIL NIL)'
    )
    assert p.text == "See attached."


NESTED = (
    b"From: outer@x.test\r\nSubject: fwd\r\nContent-Type: multipart/mixed; boundary=o\r\n\r\n"
    b"--o\r\nContent-Type: text/plain\r\n\r\nsee below\r\n"
    b"--o\r\nContent-Type: message/rfc822\r\n\r\n"
    b"From: inner@y.test\r\nSubject: orig\r\nMessage-ID: <i@y>\r\n"
    b"Content-Type: multipart/alternative; boundary=i\r\n\r\n"
    b"--i\r\n\r\ninner plain\r\n--i\r\nContent-Type: text/html\r\n\r\n<b>inner</b>\r\n--i--\r\n"
    b"--o--\r\n"
)


def test_message_rfc822_nested():
    p = parse(NESTED)
    inner_env = (
        b'(NIL "orig" ((NIL NIL "inner" "y.test")) ((NIL NIL "inner" "y.test")) '
        b'((NIL NIL "inner" "y.test")) NIL NIL NIL NIL "<i@y>")'
    )
    inner_body = (
        b'(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 11 1)'
        b'("TEXT" "HTML" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 12 1) "ALTERNATIVE")'
    )
    encapsulated = len(NESTED[NESTED.index(b"From: inner") : NESTED.index(b"\r\n--o--")])
    assert p.body == (
        b'(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 9 1)'
        b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" %d '
        % encapsulated
        + inner_env
        + b" "
        + inner_body
        + b' 13) "MIXED")'
    )
    assert b'"ALTERNATIVE" ("BOUNDARY" "i") NIL NIL NIL) 13 NIL NIL NIL NIL) "MIXED"' in (
        p.bodystructure
    )
    assert p.text == "see below\ninner plain"


def test_digest_default_is_message_rfc822():
    # RFC 2046 §5.1.5
    p = parse(
        b"Content-Type: multipart/digest; boundary=d\r\n\r\n"
        b"--d\r\n\r\nSubject: one\r\n\r\nfirst\r\n--d\r\n\r\nSubject: two\r\n\r\nsecond\r\n--d--\r\n"
    )
    assert p.body.count(b'("MESSAGE" "RFC822"') == 2
    assert b'(NIL "two" NIL NIL NIL NIL NIL NIL NIL NIL)' in p.body


def test_multipart_without_boundary_is_opaque():
    p = parse(b"Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\nhi\r\n--x--\r\n")
    assert p.body == b'("APPLICATION" "OCTET-STREAM" NIL NIL NIL "7BIT" 18)'


def test_boundary_never_found_gives_empty_part():
    p = parse(b"Content-Type: multipart/mixed; boundary=zz\r\n\r\njust text\r\n")
    assert p.body == b'(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 0 0) "MIXED")'


def test_missing_final_boundary():
    p = parse(
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b\r\n\r\ntwo\r\n"
    )
    assert p.body == (
        b'(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3 1)'
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 5 1) "MIXED")'
    )


def test_outer_boundary_closes_inner_multipart():
    # RFC 2046 §5.1.2: the inner multipart has no close-delimiter; the outer one ends it
    p = parse(
        b"Content-Type: multipart/mixed; boundary=out\r\n\r\n"
        b"--out\r\nContent-Type: multipart/mixed; boundary=in\r\n\r\n--in\r\n\r\na\r\n"
        b"--out\r\n\r\nb\r\n--out--\r\n"
    )
    assert p.body == (
        b'((("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1 1) "MIXED")'
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1 1) "MIXED")'
    )


def test_inner_repeating_outer_boundary():
    # the innermost multipart claims the shared delimiter lines
    p = parse(
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n"
        b"--b\r\n\r\ny\r\n--b--\r\n"
    )
    assert p.body == (
        b'((("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1 1) "MIXED")'
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1 1) "MIXED")'
    )


def test_boundary_prefix_is_not_a_delimiter():
    # "--bx" is content for boundary "b"; transport padding after a delimiter is allowed
    p = parse(b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b  \r\n\r\n--bx\r\n--b--\r\n")
    assert p.body == b'(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 4 1) "MIXED")'


def test_base64_message_rfc822_is_opaque():
    p = parse(
        b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogeA==\r\n"
    )
    assert p.body == b'("APPLICATION" "OCTET-STREAM" NIL NIL NIL "BASE64" 18)'


def test_eight_bit_parameter_value_is_literal():
    p = parse(b'Content-Type: text/plain; charset=utf-8; name="\xc3\xa9.txt"\r\n\r\nx')
    assert b'"NAME" {6}\r\n\xc3\xa9.txt)' in p.body


def test_message_global_is_a_basic_part():
    # a form both RFC 3501 and RFC 9051 parsers accept (no ENVELOPE inside)
    p = parse(b"Content-Type: message/global\r\n\r\nSubject: x\r\n\r\ny")
    assert p.body == b'("MESSAGE" "GLOBAL" NIL NIL NIL "7BIT" 15)'
