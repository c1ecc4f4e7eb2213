"""Small text helpers shared by every face."""


def one_line(text: str) -> str:
    """Text safe on one line: after `--` in SQL, `#` in a shell, or in a one-line error. Identifiers and
    JSON keys may hold newlines; a newline in a comment would turn the rest of a hostile name into a
    statement, and in an error it would break the one-line promise."""
    if text.isprintable():  # the usual case, checked in C: `fix` describes thousands of plans
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
