"""Hypothesis strategies for hostile email: raw RFC 5322 / MIME messages as bytes.

Everything here is wrong on purpose, the way real mail is wrong and the way an
attacker would make it wrong: odd header casing and folding, NULs, control and
8-bit bytes in headers, broken RFC 2047 encoded words, missing or repeated
headers, garbage dates and addresses, boundaries that are missing, wrong or
repeated, charsets that are unknown or lie about the bytes, transfer encodings
whose payload is not what they claim, deep nesting, hostile HTML, attachment
names that try path traversal or Slack markup, and sizes from nothing to large.

Large content is built by repeating a small drawn chunk, so Hypothesis stays fast
and its shrinker still works; the 25 MB cases are built by `big_*` helpers, not
drawn.
"""

from __future__ import annotations

import base64
import quopri
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hypothesis import strategies as st

# Text Slack would act on if it reached mrkdwn unescaped: pings, mentions, links.
SLACK_MARKUP = (
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U0BOSS>",
    "<#C0GENERAL>",
    "<!subteam^S0TEAM>",
    "<http://evil.example/|click me>",
    "<mailto:x@evil.example|mail>",
    "<https://evil.example>",
)
_EOLS = (b"\r\n", b"\n", b"\r")


@dataclass
class Part:
    """One MIME entity: header lines as written (name, value) and its body bytes."""

    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""

    def render(self, eol: bytes = b"\r\n") -> bytes:
        head = eol.join(name + b":" + value for name, value in self.headers)
        return head + eol + eol + self.body


# -- small pieces --------------------------------------------------------------------


def _flip_case(name: str, mask: int) -> str:
    return "".join(c.swapcase() if mask >> (i % 31) & 1 else c for i, c in enumerate(name))


@st.composite
def odd_case(draw: st.DrawFn, name: str) -> bytes:
    """`name` in any casing: header names are case-insensitive, parsers must agree."""
    if draw(st.booleans()):
        return name.encode()
    return _flip_case(name, draw(st.integers(0, 2**31 - 1))).encode()


# Characters that break naive code: NUL and C0/C1 controls, bidi overrides, surrogate
# look-alikes, zero-width joiners, the BOM, line and paragraph separators.
_NASTY_CHARS = "\x00\x01\x07\x08\x0b\x0c\x1b\x7f\x85\xa0\u200b\u200d\u202e\u2028\u2029\ufeff\uffff"
nasty_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(_NASTY_CHARS),
        st.characters(blacklist_categories=("Cs",)),
        st.sampled_from("<>&|!@#^*_~`:;,\"'\\()[]=?"),
    ),
    max_size=40,
)
hostile_strings = st.sampled_from(
    [
        *SLACK_MARKUP,
        "&lt;!channel&gt;",  # already escaped: must come out double-escaped, not unescaped
        "<<!channel>>",
        "<!channel|@channel>",
        "`<!here>`",
        "*bold* _it_ ~strike~ ```code```",
        "../../etc/passwd",
        "..\\..\\windows\\system32",
        "\x00",
        "before\x00after",
        "\x1b[31mred\x1b[0m",
        "\u202egnp.exe",
        "{{ 7*7 }} {% raw %}",
        "%s %n %x",
        "' OR 1=1 --",
        "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
    ]
)


def _enc(text: str, codec: str) -> bytes:
    return text.encode(codec, "replace")


@st.composite
def text_bytes(draw: st.DrawFn) -> bytes:
    """Header-ish or body-ish text in some encoding, or raw 8-bit bytes."""
    pieces = draw(st.lists(st.one_of(nasty_text, hostile_strings), max_size=4))
    text = " ".join(pieces)
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(st.binary(max_size=40))
    codec = draw(st.sampled_from(["utf-8", "latin-1", "cp1252", "utf-16", "shift_jis", "ascii"]))
    return _enc(text, codec)


# -- RFC 2047 encoded words --------------------------------------------------------------


@st.composite
def encoded_words(draw: st.DrawFn) -> bytes:
    """Encoded words, valid or broken in each way a sender or a relay gets them wrong."""
    text = draw(st.one_of(nasty_text, hostile_strings))
    charset = draw(
        st.sampled_from(
            [
                "utf-8",
                "UTF-8",
                "iso-8859-1",
                "windows-1252",
                "x-unknown",
                "klingon",
                "utf-7",
                "unicode-escape",
                "utf-16",
                "utf-8*en",
                "",
            ]
        )
    )
    try:
        payload = text.encode(charset or "utf-8", "replace")
    except (LookupError, UnicodeError):
        payload = text.encode("utf-8", "replace")
    form = draw(st.integers(0, 9))
    if form == 0:
        return b"=?" + charset.encode() + b"?B?" + base64.b64encode(payload) + b"?="
    if form == 1:
        return b"=?" + charset.encode() + b"?Q?" + quopri.encodestring(payload, header=True) + b"?="
    if form == 2:  # base64 claimed, garbage given
        return b"=?utf-8?B?" + draw(st.sampled_from([b"////", b"abc", b"%%%", b"=", b"a===b"])) + b"?="
    if form == 3:  # q-encoding mistakes: bad escapes, raw spaces, raw 8-bit
        return b"=?utf-8?Q?" + draw(st.sampled_from([b"=ZZ", b"a b", b"=F", b"\xff\xfe", b"=\r\n"])) + b"?="
    if form == 4:  # unknown encoding letter
        return b"=?utf-8?X?" + payload[:20] + b"?="
    if form == 5:  # unterminated
        return b"=?utf-8?Q?" + payload[:20]
    if form == 6:  # encoded bytes that are invalid in the declared charset
        return b"=?utf-8?B?" + base64.b64encode(b"\xc3\x28\xa0\xa1\xff") + b"?="
    if form == 7:  # escapes that decode to NUL, surrogates and controls
        return draw(
            st.sampled_from(
                [
                    b"=?unicode-escape?Q?=5Cx00?=",
                    b"=?unicode-escape?Q?=5Cud800?=",
                    b"=?utf-7?Q?+2AA-?=",
                    b"=?utf-8?Q?=00?=",
                    b"=?utf-8?B?AA==?=",
                    b"=?utf-8?Q?=1B=5B31m?=",
                ]
            )
        )
    if form == 8:  # adjacent words split inside a multi-byte character
        raw = "€€€".encode()
        return (
            b"=?utf-8?B?" + base64.b64encode(raw[:4]) + b"?= =?utf-8?B?" + base64.b64encode(raw[4:]) + b"?="
        )
    return b"=?" + charset.encode() + b"?b?" + base64.b64encode(payload) + b"?="


# -- header values -------------------------------------------------------------------------


@st.composite
def fold(draw: st.DrawFn, value: bytes) -> bytes:
    """Fold a value: proper (EOL + WSP), broken (EOL without WSP) or not at all."""
    if not value or draw(st.integers(0, 3)):
        return value
    at = draw(st.integers(0, len(value)))
    eol = draw(st.sampled_from(_EOLS))
    wsp = draw(st.sampled_from([b" ", b"\t", b"", b"  \t"]))
    return value[:at] + eol + wsp + value[at:]


@st.composite
def long_value(draw: st.DrawFn, piece: st.SearchStrategy[bytes]) -> bytes:
    """A value repeated until it is very long, unfolded (RFC 5322 says 998 at most)."""
    chunk = (draw(piece) or b"x")[:200]
    return chunk * draw(st.sampled_from([50, 500, 2000]))


generic_values = st.one_of(text_bytes(), encoded_words(), st.just(b""), st.just(b" "))


@st.composite
def address_values(draw: st.DrawFn) -> bytes:
    choices = [
        b"ada@example.org",
        b'"Ada Lovelace" <ada@example.org>',
        b"=?utf-8?Q?Andr=C3=A9?= <andre@example.fr>",
        b'"<!channel>" <x@example.org>',
        b"<!channel> <x@example.org>",
        b"<@U0BOSS>@example.org",
        b'"a\x00b" <nul@example.org>',
        b"nul\x00@example.org",
        b"<<ada@example.org>>",
        b"a@b@c",
        b"@",
        b"<>",
        b",,,",
        b'"unterminated <x@y>',
        b"a@[1.2.3.4",
        b"undisclosed-recipients:;",
        b"Group: a@b.example, c@d.example;",
        b"(comment (nested) <ada@example.org>",
        b"ada@example.org (Ada\x07)",
        b"\xc3\xa9l\xc3\xa8ve@\xc3\xa9cole.fr",
        b"\xff\xfe@example.org",
        b"&&&&&&&&@example.org",
        b"postmaster@example.org",
        b"MAILER-DAEMON@mx.example.org",
        b"support@example.com",
    ]
    one = st.one_of(st.sampled_from(choices), encoded_words().map(lambda w: w + b" <w@example.org>"))
    form = draw(st.integers(0, 6))
    if form == 0:
        return draw(st.lists(one, min_size=2, max_size=6).map(b", ".join))
    if form == 1:  # thousands of recipients
        return b", ".join([draw(one)] * draw(st.sampled_from([100, 1000])))
    if form == 2:
        return draw(text_bytes())
    return draw(one)


date_values = st.sampled_from(
    [
        b"Fri, 20 Nov 2026 10:00:00 +0100",
        b"20 Nov 2026 10:00 -0000",
        b"yesterday",
        b"",
        b"Mon, 99 Foo 2026 99:99:99 +9999",
        b"Fri, 31 Dec 9999 23:59:59 -2359",
        b"Sat, 1 Jan 0001 00:00:00 +2359",
        b"Fri, 20 Nov 99999 10:00:00 +0000",
        b"Fri, 20 Nov 2026 10:00:00 +99999999999999999999",
        b"99999999999999999999",
        b"Fri, 20 Nov 2026 10:00:00 \x00+0100",
        b"Fri, 20 Nov 2026 25:61:61 GMT",
        b"2026-11-20T10:00:00Z",
        b"\xff\xfe date",
    ]
)


@st.composite
def message_id_values(draw: st.DrawFn) -> bytes:
    choices = [
        b"<abc.123@example.org>",
        b"",
        b"<>",
        b"no-brackets@example.org",
        b"<a@b> <c@d>",
        b"<nul\x00@example.org>",
        b"<!channel@example.org>",
        b"<\xff\xfe@example.org>",
        b"(comment) <x@y>",
        b"<" + b"a" * 5000 + b"@example.org>",
    ]
    value = draw(st.sampled_from(choices))
    if value == b"<abc.123@example.org>":
        # Mostly unique, so examples don't dedupe into each other by accident.
        value = b"<hostile." + str(draw(st.integers(0, 10**12))).encode() + b"@example.org>"
    return value


references_values = st.one_of(
    message_id_values(),
    st.lists(message_id_values(), max_size=5).map(b" ".join),
    st.just(b"<a@x> " * 1000),
)

_CHARSETS = [
    "utf-8",
    "us-ascii",
    "iso-8859-1",
    "windows-1252",
    "utf-16",
    "utf-7",
    "unicode-escape",
    "raw-unicode-escape",
    "idna",
    "punycode",
    "rot13",
    "base64",
    "x-unknown",
    "klingon",
    "",
    "utf-8\x00",
    "utf-8; charset=latin-1",
]
_TRANSFER_ENCODINGS = [
    b"7bit",
    b"8bit",
    b"binary",
    b"base64",
    b"BASE64 ",
    b"quoted-printable",
    b"x-uuencode",
    b"b64",
    b"",
    b"base64; quoted-printable",
]


@st.composite
def content_types(draw: st.DrawFn, kind: str, boundary: bytes | None = None) -> bytes:
    charset = draw(st.sampled_from(_CHARSETS)).encode("latin-1")
    value = kind.encode() + draw(
        st.sampled_from([b"", b"; charset=" + charset, b'; charset="' + charset + b'"'])
    )
    if boundary is not None:
        value += b'; boundary="' + boundary + b'"'
    extra = draw(
        st.sampled_from(
            [
                b"",
                b";;;",
                b"; name*0*=utf-8''%2e%2e%2f; name*1=etc%2fpasswd",
                b"; format=flowed; delsp=yes",
                b"; charset*=utf-8''%FF%FE",
                b'; boundary="duplicate"',  # a second boundary parameter
                b"; =",
            ]
        )
    )
    return value + extra


# -- leaves -------------------------------------------------------------------------------


def _transfer_encode(data: bytes, cte: bytes) -> bytes:
    key = cte.strip().lower()
    if key == b"base64":
        return base64.encodebytes(data)
    if key == b"quoted-printable":
        return quopri.encodestring(data)
    return data


_BAD_PAYLOADS = [
    b"!!!! not base64 !!!!\r\n",
    b"QUJD\r\n====\r\nRE\r\n",
    b"=ZZ=\r\n=\r\n=F",
    b"\x00\x00\x00\xff",
    b"begin 644 x\r\n`\r\nend\r\n",
]


@st.composite
def body_bytes(draw: st.DrawFn) -> bytes:
    """Text, repeated up to about a megabyte: sizes from nothing to large."""
    chunk = draw(text_bytes())[:64] + draw(st.sampled_from([b"", b"\r\n", b"\n", b"\r", b"\r\n> quoted\r\n"]))
    repeat = draw(st.sampled_from([0, 1, 1, 1, 3, 100, 5_000, 15_000]))
    return chunk * repeat if chunk else b"x" * repeat


hostile_html = st.sampled_from(
    [
        b"<html><body><p>Hi <b>team</b> <!channel></p></body></html>",
        b"<script>alert(1)</script><p>&lt;!channel&gt; and <a href='javascript:alert(1)'>x</a></p>",
        b"<p>unclosed <b><i><u>" * 200,
        b"<div>" * 5000 + b"deep" + b"</div>" * 5000,
        b"&#0;&#x0;&#xD800;&#x110000;&#99999999999;&amp&lt&gt;&nosuch;",
        b"<!-- <!channel> --><![CDATA[<@U0BOSS>]]><?php echo 1 ?>",
        b'<<<>>><</>><a href="<!here>">link</a>',
        b"<a href='http://evil.example/|click'>http://evil.example</a>",
        b"<img src=x onerror=alert(1)><style>*{}</style><table><tr><td>" * 300,
        b"<p>" + b"A" * 200_000 + b"</p>",
        b'<a href="' + b"x" * 50_000 + b'">',
        b"\xff\xfe<\x00h\x00t\x00m\x00l\x00>",
        b"",
    ]
)


@st.composite
def text_leaf(draw: st.DrawFn, subtype: str = "plain") -> Part:
    cte = draw(st.sampled_from(_TRANSFER_ENCODINGS))
    data = draw(hostile_html) if subtype == "html" else draw(body_bytes())
    body = (
        draw(st.sampled_from(_BAD_PAYLOADS)) if draw(st.integers(0, 5)) == 0 else _transfer_encode(data, cte)
    )
    headers = [(b"Content-Type", b" " + draw(content_types(f"text/{subtype}")))]
    if cte or draw(st.booleans()):
        headers.append((b"Content-Transfer-Encoding", b" " + cte))
    return Part(headers, body)


@st.composite
def filenames(draw: st.DrawFn) -> bytes:
    """A Content-Disposition value with a hostile file name, plainly or RFC 2231-encoded."""
    name = draw(
        st.sampled_from(
            [
                b"../../etc/passwd",
                b"..\\..\\boot.ini",
                b"/etc/shadow",
                b"<!channel>.pdf",
                b"<@U0BOSS> <http://evil.example|x>.doc",
                b"a\x00b.txt",
                b"\xff\xfe.bin",
                b"CON",
                b"x" * 5000 + b".pdf",
                b"&amp;&lt;.txt",
                b"",
                b"fattura \xe2\x82\xac.pdf",
            ]
        )
    )
    form = draw(st.integers(0, 5))
    if form == 0:
        return b'attachment; filename="' + name + b'"'
    if form == 1:
        return b"attachment; filename*=UTF-8''" + "".join(f"%{b:02X}" for b in name[:200]).encode()
    if form == 2:  # RFC 2231 continuations, one of them encoded
        return b'attachment; filename*0="../../"; filename*1*=utf-8\'\'%2e%2e%2fetc; filename*2="/passwd"'
    if form == 3:  # an unknown charset, bad escapes
        return b"attachment; filename*=bogus''%FF%ZZ%"
    if form == 4:
        return b"inline; filename=" + name + b"; filename=second.txt"
    return draw(encoded_words()).join([b'attachment; filename="', b'"'])


@st.composite
def attachment_leaf(draw: st.DrawFn) -> Part:
    cte = draw(st.sampled_from(_TRANSFER_ENCODINGS))
    kind = draw(
        st.sampled_from(["application/pdf", "image/png", "application/octet-stream", "foo/bar", "x", ""])
    )
    data = draw(st.binary(max_size=64)) * draw(st.sampled_from([1, 10, 1000]))
    body = (
        draw(st.sampled_from(_BAD_PAYLOADS)) if draw(st.integers(0, 4)) == 0 else _transfer_encode(data, cte)
    )
    headers = [
        (b"Content-Type", b" " + kind.encode() + draw(st.sampled_from([b"", b'; name="<!here>.bin"']))),
        (b"Content-Disposition", b" " + draw(filenames())),
        (b"Content-Transfer-Encoding", b" " + cte),
    ]
    return Part(headers, body)


leaves = st.one_of(text_leaf(), text_leaf("html"), attachment_leaf())


# -- containers ------------------------------------------------------------------------------


@st.composite
def multipart(draw: st.DrawFn, children: st.SearchStrategy[Part]) -> Part:
    parts = draw(st.lists(children, max_size=4))
    boundary = draw(st.sampled_from([b"b1", b"==_hostile_==", b"<!channel>", b"", b"x" * 200, b"a b"]))
    subtype = draw(
        st.sampled_from(["mixed", "alternative", "related", "report", "digest", "signed", "x-odd"])
    )
    mistake = draw(st.integers(0, 6))
    declared: bytes | None = boundary
    used = boundary
    if mistake == 0:
        declared = None  # no boundary parameter at all
    elif mistake == 1:
        used = boundary + b"-other"  # the parts use a boundary nobody declared
    eol = b"\r\n"
    body = draw(st.sampled_from([b"", b"preamble <!channel>\r\n", b"\x00\xff preamble\r\n"]))
    for part in parts:
        body += b"--" + used + eol + part.render(eol) + eol
    if mistake != 2:  # mistake 2: the closing delimiter is missing
        body += b"--" + used + b"--" + eol
    if mistake == 3:
        body += b"epilogue <@U0BOSS> --" + used + b"--\r\n"
    return Part([(b"Content-Type", b" " + draw(content_types(f"multipart/{subtype}", declared)))], body)


@st.composite
def rfc822(draw: st.DrawFn, children: st.SearchStrategy[Part]) -> Part:
    inner = draw(children)
    inner.headers = [*draw(top_headers()), *inner.headers]
    return Part([(b"Content-Type", b" message/rfc822")], inner.render())


mime_trees = st.recursive(
    leaves, lambda children: st.one_of(multipart(children), rfc822(children)), max_leaves=8
)


def nested(depth: int, kinds: Sequence[str], leaf: Part) -> Part:
    """`depth` levels of multiparts and attached messages around one leaf."""
    part = leaf
    for level in range(depth):
        kind = kinds[level % len(kinds)] if kinds else "multipart"
        if kind == "rfc822":
            inner = Part(
                [(b"From", b" nested@example.org"), (b"Subject", b" level %d" % level), *part.headers],
                part.body,
            )
            part = Part([(b"Content-Type", b" message/rfc822")], inner.render())
        else:
            boundary = b"lvl%d" % level
            body = b"--" + boundary + b"\r\n" + part.render() + b"\r\n--" + boundary + b"--\r\n"
            part = Part([(b"Content-Type", b' multipart/mixed; boundary="' + boundary + b'"')], body)
    return part


@st.composite
def deep_trees(draw: st.DrawFn) -> Part:
    depth = draw(st.integers(20, 100))
    kinds = draw(st.lists(st.sampled_from(["multipart", "rfc822"]), min_size=1, max_size=3))
    return nested(depth, kinds, draw(leaves))


# -- whole messages ---------------------------------------------------------------------------

_EXTRA_HEADERS = [
    "X-Mailer",
    "Received",
    "Auto-Submitted",
    "Precedence",
    "Return-Path",
    "X-Auto-Response-Suppress",
    "Content-Language",
    "MIME-Version",
    "Sender",
    "Reply-To",
    "Cc",
    "X-\x00Evil",
    "From ",
    "X-\xe9t\xe9",
    "",
    "X-" + "L" * 2000,
]


@st.composite
def header_value(draw: st.DrawFn, name: str) -> bytes:
    lower = name.lower()
    if lower in {"from", "to", "cc", "reply-to", "sender"}:
        strategy: st.SearchStrategy[bytes] = address_values()
    elif lower == "date":
        strategy = date_values
    elif lower in {"message-id", "in-reply-to"}:
        strategy = message_id_values()
    elif lower == "references":
        strategy = references_values
    else:
        strategy = generic_values
    if draw(st.integers(0, 9)) == 0:
        value = draw(long_value(strategy))
    else:
        value = draw(st.lists(strategy, min_size=1, max_size=3).map(b" ".join))
    value = draw(fold(value))
    return draw(st.sampled_from([b" ", b"", b"\t", b"  "])) + value


@st.composite
def top_headers(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
    """The usual headers, each maybe missing, repeated or garbage, plus odd extras."""
    headers: list[tuple[bytes, bytes]] = []
    for name in ("From", "To", "Subject", "Date", "Message-ID", "In-Reply-To", "References"):
        copies = draw(st.sampled_from([0, 1, 1, 1, 1, 2]))
        for _ in range(copies):
            headers.append((draw(odd_case(name)), draw(header_value(name))))
    for name in draw(st.lists(st.sampled_from(_EXTRA_HEADERS), max_size=4)):
        headers.append((name.encode("latin-1"), draw(header_value(name))))
    return draw(st.permutations(headers)) if draw(st.booleans()) else headers


@st.composite
def hostile_messages(draw: st.DrawFn, trees: st.SearchStrategy[Part] | None = None) -> bytes:
    """A whole message: hostile top headers around a hostile MIME tree."""
    tree = draw(trees if trees is not None else st.one_of(mime_trees, mime_trees, deep_trees()))
    headers = draw(top_headers())
    if draw(st.booleans()):
        headers.append((b"MIME-Version", b" 1.0"))
    message = Part([*headers, *tree.headers], tree.body)
    eol = draw(st.sampled_from(_EOLS))
    raw = message.render(b"\r\n")
    if eol != b"\r\n":
        raw = raw.replace(b"\r\n", eol)
    damage = draw(st.integers(0, 9))
    if damage == 0:  # cut off anywhere, as a dropped connection leaves it
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif damage == 1:  # no blank line between headers and body
        raw = raw.replace(eol + eol, eol, 1)
    elif damage == 2:  # an mbox "From " line in front
        raw = b"From MAILER-DAEMON Fri Nov 20 10:00:00 2026" + eol + raw
    return raw


# Anything at all: raw bytes, and messages, and messages cut or spliced at random.
any_bytes = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"", b"\r\n", b"\x00" * 64, b":\r\n\r\n", b"From: \r\n\r\n", b"\r\n\r\nbody only"]),
)
hostile_mail = st.one_of(hostile_messages(), hostile_messages(), hostile_messages(), any_bytes)


# -- the heavy cases (built, not drawn) ----------------------------------------------------------

MB = 1024 * 1024


def _envelope(subject: str, extra: Sequence[tuple[bytes, bytes]] = ()) -> list[tuple[bytes, bytes]]:
    return [
        (b"From", b' "<!channel> Big Sender" <big@example.org>'),
        (b"To", b" support@example.com"),
        (b"Subject", b" " + subject.encode()),
        (b"Date", b" Fri, 20 Nov 2026 10:00:00 +0100"),
        (b"Message-ID", b" <" + subject.replace(" ", ".").encode() + b"@big.example.org>"),
        (b"MIME-Version", b" 1.0"),
        *extra,
    ]


def big_attachment(size: int = 25 * MB, subject: str = "big attachment") -> bytes:
    """A short note and one attachment of `size` raw bytes (base64: a third more on the wire)."""
    payload = base64.encodebytes(bytes(range(256)) * (size // 256))
    body = (
        b"--BIG\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee the <!here> attached dump.\r\n"
        b"--BIG\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="../../<!channel>.bin"\r\n\r\n' + payload + b"--BIG--\r\n"
    )
    return Part(_envelope(subject, [(b"Content-Type", b' multipart/mixed; boundary="BIG"')]), body).render()


def big_text(size: int = 25 * MB, subject: str = "big text") -> bytes:
    """A plain-text body of `size` bytes, mrkdwn and long lines included."""
    line = b"<!channel> <@U0BOSS> & <http://evil.example|x> " * 20 + b"\r\n"
    body = line * (size // len(line))
    return Part(_envelope(subject, [(b"Content-Type", b" text/plain; charset=utf-8")]), body).render()


def big_nested(size: int = 25 * MB, depth: int = 100, subject: str = "big nested") -> bytes:
    """`depth` alternating multipart / message/rfc822 levels around a large HTML leaf."""
    html = b"<p>&lt;!channel&gt; <b>" + b"A" * (size - 64) + b"</b></p>"
    leaf = Part([(b"Content-Type", b" text/html; charset=utf-8")], html)
    tree = nested(depth, ["multipart", "rfc822"], leaf)
    return Part([*_envelope(subject), *tree.headers], tree.body).render()


def big_header(size: int = 5 * MB, subject: str = "big header") -> bytes:
    """One header line of `size` bytes, never folded."""
    extra = [(b"X-Huge", b" " + b"<!channel>" * (size // 10))]
    return Part(_envelope(subject, extra), b"small body\r\n").render()


HEAVY: dict[str, Callable[[], bytes]] = {
    "25 MB attachment": big_attachment,
    "25 MB text body": big_text,
    "25 MB, 100 levels deep": big_nested,
    "5 MB header line": big_header,
}
