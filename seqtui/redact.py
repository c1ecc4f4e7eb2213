"""The one gate for secrets: every string seqtui shows or writes passes gate() first.

libpq and psycopg echo pieces of the connection string in their errors, and a string that is not a
valid URI is echoed whole, password and all (DESIGN fact 24). So no message is trusted: gate() masks

1. every secret known to the process, in each spelling an error could give it (as typed,
   percent-encoded or decoded, quoted as in key=value conninfo, escaped as JSON, repr or a shell would),
   and its longer runs of letters and digits on their own (libpq echoes the piece of a value it cut).
   connect.resolve() remembers them as soon as it finds them: the target's password, PGPASSWORD, the
   passfile's and service file's passwords, a .env line's even when the line is malformed;
2. anything shaped like a password, known or not, valid syntax or not: `scheme://user:SECRET@host`
   with any scheme, doubled `@` and unbalanced brackets, `password=SECRET`, `password='SEC RET'` with
   escapes or without its closing quote.

Over-redaction is preferred to a leak; text without a password (`postgresql:///db`) passes unchanged.
Where the text goes out, the gate is applied by: GatedStream (stdout and stderr while cli.main runs:
prints, rich tables, argparse, warnings, logging, tracebacks), dumps() (JSON: the `check --json`
report, the audit log), and the UI's notify/header/dialogs (tui/app.py, tui/screens.py).
"""

from __future__ import annotations

import io
import json
import re
import sys
import threading
from contextlib import contextmanager
from urllib.parse import quote, quote_plus, unquote

MASK = "***"

# A password in a URI-ish string: a scheme (any, typos too) and its slashes, or a bare //, then a user
# (maybe empty), a colon, and everything up to the last @ of the token: libpq splits at the first @,
# a person may have meant the last one, and over-redaction is the safe side. After //, a password
# that holds a space still ends at the line's last @. A scheme without // (postgresql:u:pw@h) is only
# masked within its token, so prose such as "error: ... at fe80::1 ... u@h" is left alone.
_URI = re.compile(r"""
    (?: (?P<slashes> (?<![\w.+\-]) [A-Za-z][\w+.\-]{0,40} : /+ | (?<![:/]) // )
        [^\s:@/]{0,256} :
        (?P<pw> \S*(?=@) | [^\n]*(?=@) )
      | (?<![\w.+\-]) [A-Za-z][\w+.\-]{0,40} : [^\s:@/]{0,256} :
        (?P<pw2> \S*(?=@) )
    )""", re.X)

# key=value-ish: password=, PGPASSWORD=, sslpassword=, "password": ..., passwd, pwd. A quoted value
# keeps backslash escapes (libpq's and JSON's) and, without its closing quote, runs to the end of the
# line; an unquoted one runs to the next whitespace, except in a URL query (?password=x&...), where
# it ends at &. libpq skips spaces after `=`: so does this.
_KEY = r"""["']? [\w.\-]*? (?:password|passwd|passphrase|pass|pwd) (?!\w) ["']?"""
_KV = re.compile(rf"""
    (?P<qpre> (?<=[?&]) {_KEY} = ) (?P<qval> [^&\s]+ )
  | (?P<pre> (?<![\w]) {_KEY} [^\S\n]* [=:] [^\S\n]* )
    (?P<val> '(?:[^'\\\n]|\\.)*'? | "(?:[^"\\\n]|\\.)*"? | \S+ )
    """, re.X | re.I)


def _kv_hint(text: str) -> bool:
    """Could _KV match? lower() and two substring searches: half the time of a case-blind regex
    search, which counts on a 5 MB `check --json` document."""
    low = text.lower()
    return "pass" in low or "pwd" in low

# Characters at which some parser (libpq's URI and conninfo parsers, a .env reader, a shell) may cut
# a password it misread: the pieces on either side are remembered too when they are long enough to
# be worth masking (a one-letter piece masked everywhere would garble every message).
_CUTS = "@/?#&'\" \t:;,=[]"
MIN_PIECE = 4


# What an input string (never prose) holds as a password when read greedily: after user: up to the
# last @ of the line, after password= up to the next key= (or & key= in a URL query), since libpq
# cuts a value at a space, a quote or an & that the person typing may have meant as part of it.
_URI_GREEDY = re.compile(r"""
    [A-Za-z][\w+.\-]{0,40} : /* [^\s:@/]{0,256} : (?P<pw> [^\n]* ) (?=@)
  | // [^\s:@/]{0,256} : (?P<pw2> [^\n]* ) (?=@)
    """, re.X)
_KV_GREEDY = re.compile(rf"""
    (?<=[?&]) {_KEY} = (?P<qval> .*? ) (?= &[^&=\s]*= | $ )
  | (?<![\w]) {_KEY} [^\S\n]* [=:] [^\S\n]* (?P<val> .*? ) (?= \s+[\w.\-]+[^\S\n]*= | \s*$ )
    """, re.X | re.I | re.M)


def pieces(secret: str) -> set[str]:
    """The runs of letters and digits in `secret` worth masking on their own: libpq cuts a value it
    misreads at a space, a quote, an &, and echoes the piece after. Four characters at least, and a
    run of digits only from eight on (shorter numbers are everywhere: ports, values, times)."""
    return {p for p in re.split(r"[\W_]+", secret)
            if len(p) >= MIN_PIECE and (not p.isdigit() or len(p) >= 8) and p != secret}


def spellings(secret: str) -> set[str]:
    """Every spelling of `secret` an error message, a URL or a serializer might contain."""
    bases = {secret}
    if "%" in secret:
        bases.add(unquote(secret))
    out = set()
    for s in bases:
        encoded = quote(s, safe="")
        out |= {
            s,
            encoded,
            re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), encoded),
            quote(s),                      # urllib's default (keeps /)
            quote(s, safe=":/?#[]@!$&'()*+,;="),  # what a URL builder leaves alone
            quote_plus(s),
            s.replace("\\", "\\\\").replace("'", "\\'"),  # a quoted value of key=value conninfo
            json.dumps(s)[1:-1],
            json.dumps(s, ensure_ascii=False)[1:-1],
            repr(s)[1:-1],
            ascii(s)[1:-1],
            repr(s.encode("utf-8", "surrogateescape"))[2:-1],
            s.replace("'", "'\"'\"'"),     # inside shlex.quote's single quotes
            re.sub(r"\\(.)", r"\1", s),    # an unquoted conninfo value, after libpq's unescaping
        }
    out.discard("")
    return out


def candidates(text: str) -> list[str]:
    """Passwords found in an input string (a DSN, a .env line) by the shapes gate() masks, with the
    pieces a parser that cut them somewhere else would have made of them."""
    found: list[str] = []
    for m in _URI.finditer(text):
        found.append(m.group("pw") if m.group("pw") is not None else m.group("pw2"))
    for m in _URI_GREEDY.finditer(text):
        found.append(m.group("pw") if m.group("pw") is not None else m.group("pw2"))
    for m in _KV_GREEDY.finditer(text):
        found.append(m.group("qval") if m.group("qval") is not None else m.group("val"))
    for m in _KV.finditer(text):
        if m.group("qval") is not None:  # ?password=...: libpq takes it as it is, percent-decoded
            found.append(m.group("qval"))
            continue
        value = m.group("val")
        found.append(value)
        if value[:1] in ("'", '"'):  # the value a parser unquoted
            inner = value[1:-1] if len(value) > 1 and value[-1] == value[0] else value[1:]
            found.append(inner)
            found.append(re.sub(r"\\(.)", r"\1", inner))
    pieces: list[str] = []
    for value in found:
        for i, ch in enumerate(value):
            if ch in _CUTS:
                pieces += [value[:i], value[i + 1:]]
    return [s for s in dict.fromkeys(found + [p for p in pieces if len(p) >= MIN_PIECE]) if s]


class _Known:
    """The secrets known to the process, as spellings sorted longest first (so a longer spelling is
    masked before a shorter one inside it could leave its rest behind). Replaced whole, never
    mutated: a thread reading it sees one consistent set."""

    def __init__(self, forms: frozenset[str] = frozenset()) -> None:
        self.forms = forms
        self.ordered = tuple(sorted(forms, key=lambda s: (-len(s), s)))
        self.multiline = any("\n" in s for s in forms)


_known = _Known()
_known_lock = threading.Lock()


def _forms(secrets) -> set[str]:
    """What masking `secrets` means. A secret shorter than MIN_PIECE is not masked wherever it occurs
    (a one-letter password would turn every message into asterisks): only where a shape puts it."""
    forms = set()
    for secret in secrets:
        if secret and len(secret) >= MIN_PIECE:
            forms |= spellings(secret) | pieces(secret)
    return forms


def remember(*secrets: str) -> None:
    """Add secrets (and their spellings) to what gate() masks, for the rest of the process or of the
    enclosing gated_output()."""
    global _known
    new = _forms(secrets)
    with _known_lock:
        if not new <= _known.forms:
            _known = _Known(_known.forms | new)


def known() -> frozenset[str]:
    return _known.forms


def scrub(text: str, ordered: tuple[str, ...] = ()) -> str:
    """`text` with each of `ordered` (longest first) and every password-shaped span masked. Pure."""
    for form in ordered:
        if form in text:
            text = text.replace(form, MASK)
    if "@" in text:
        text = _URI.sub(_mask_uri, text)
    if _kv_hint(text):
        text = _KV.sub(_mask_kv, text)
    return text


def _mask_uri(m: re.Match) -> str:
    name = "pw" if m.group("pw") is not None else "pw2"
    if not m.group(name):  # postgresql://u:@h: no password to hide, shown as typed
        return m.group()
    start, end = m.span(name)
    whole = m.group()
    return whole[:start - m.start()] + MASK + whole[end - m.start():]


def _mask_kv(m: re.Match) -> str:
    if m.group("qpre") is not None:
        return m.group("qpre") + MASK
    value = m.group("val")
    quote_char = value[0] if value[:1] in ("'", '"') else ""
    return m.group("pre") + quote_char + MASK + quote_char


def gate(text: str, also: tuple[str, ...] = ()) -> str:
    """THE gate: `text` fit to leave the process. `also`: secrets to mask besides the known ones."""
    if not isinstance(text, str):
        text = str(text)
    ordered = _known.ordered
    if also:
        extra = _forms(also)
        ordered = tuple(sorted(set(ordered) | extra, key=lambda s: (-len(s), s)))
    return scrub(text, ordered)


def _may_hold_secret(text: str) -> bool:
    """A cheap test on a whole serialized document: False means gate() would change no string in it."""
    return "@" in text or _kv_hint(text) or any(f in text for f in _known.ordered)


def may_hold_secret(text: str) -> bool:
    """False when gate() would change no string within `text`: for whole documents (JSON, metrics)
    gated piece by piece only when needed."""
    return _may_hold_secret(text)


def _gate_values(obj):
    if isinstance(obj, str):
        return gate(obj)
    if isinstance(obj, dict):
        return {gate(k) if isinstance(k, str) else k: _gate_values(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_gate_values(v) for v in obj]
    return obj


def dumps(obj, **kwargs) -> str:
    """json.dumps with every string (keys too) through the gate one by one, so that a mask never
    breaks the JSON (a mask on the serialized text could swallow a closing quote). A document with
    nothing password-like in it (the usual case: checked on the text at C speed) is dumped once."""
    text = json.dumps(obj, **kwargs)
    if not _may_hold_secret(text):
        return text
    return json.dumps(_gate_values(obj), **kwargs)


class GatedStream(io.TextIOBase):
    """A text stream that passes everything written to it through the gate on its way to `inner`.

    Text is held until a line is complete (or flush()), so that the patterns see whole lines and a
    secret written in two pieces is masked whole; if a known secret spans lines, everything is held
    until flush(). Attributes it does not define (fileno, isatty, encoding...) are the inner stream's,
    so rich and input() treat it as the terminal or pipe it stands for."""

    def __init__(self, inner) -> None:
        super().__init__()
        self.inner = inner
        self._pending = ""
        self._lock = threading.RLock()  # the scan's spinner writes from its own thread

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            if _known.multiline:
                return len(text)
            cut = self._pending.rfind("\n") + 1
            if cut:
                ready, self._pending = self._pending[:cut], self._pending[cut:]
                self.inner.write(gate(ready))
        return len(text)

    def write_gated(self, text: str) -> None:
        """Write text that already went through the gate (JSON from dumps()): not masked twice."""
        with self._lock:
            self.flush()
            self.inner.write(text)

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                ready, self._pending = self._pending, ""
                self.inner.write(gate(ready))
            self.inner.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()

    @property
    def encoding(self):
        return getattr(self.inner, "encoding", "utf-8")

    @property
    def errors(self):
        return getattr(self.inner, "errors", "strict")

    def __getattr__(self, name):
        return getattr(self.inner, name)


def write_gated(stream, text: str) -> None:
    """Write `text`, already gated (dumps()), to `stream`, past a GatedStream's own masking."""
    if isinstance(stream, GatedStream):
        stream.write_gated(text)
    else:
        stream.write(text)


@contextmanager
def scope():
    """The secrets remembered in the block are forgotten after it: cli.main() runs in one, so that a
    test calling main() thousands of times in one process does not pile up secrets, nor mask one
    test's secrets in another's output."""
    global _known
    saved = _known
    try:
        yield
    finally:
        with _known_lock:
            _known = saved


@contextmanager
def gated_output():
    """sys.stdout and sys.stderr through the gate for the block, in a scope() of its own."""
    with scope():
        with _gated_streams():
            yield


@contextmanager
def _gated_streams():
    streams = {name: getattr(sys, name) for name in ("stdout", "stderr")}
    wrapped = {name: s if isinstance(s, GatedStream) or s is None else GatedStream(s)
               for name, s in streams.items()}
    for name, s in wrapped.items():
        setattr(sys, name, s)
    try:
        yield
    finally:
        for name, s in wrapped.items():
            if s is not streams[name]:
                try:
                    s.flush()
                except (OSError, ValueError):  # a closed pipe (seqtui check | head): nothing to say
                    pass
                if getattr(sys, name) is s:
                    setattr(sys, name, streams[name])
