"""What any API key looks like: generated keys start with `ct_`, but a configured
CARETIME_API_KEY may be any string of reasonable length, so the check bounds only the length
and the characters of what is hashed and looked up."""

from __future__ import annotations

MIN_KEY_LENGTH = 8
MAX_KEY_LENGTH = 200


def key_shape_problem(plaintext: str) -> str | None:
    """Why this string cannot be an API key, or None when it could be one."""
    if not MIN_KEY_LENGTH <= len(plaintext) <= MAX_KEY_LENGTH:
        return f"an API key has {MIN_KEY_LENGTH} to {MAX_KEY_LENGTH} characters"
    # Every whitespace character but the space is unprintable: this is "no character is
    # whitespace or unprintable" in two C scans, where a loop over the characters cost each
    # authenticated request ~5 µs.
    if " " in plaintext or not plaintext.isprintable():
        return "an API key has no spaces or control characters"
    return None
