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
    if any(char.isspace() or not char.isprintable() for char in plaintext):
        return "an API key has no spaces or control characters"
    return None
