"""Reading a TSIG key from a file, so the DNS target can sign without ever showing the secret.

Secrets never live in the runtime config: it names a file. That file is what
``tsig-keygen`` prints (BIND's ``key "name" { algorithm ...; secret "..."; };``),
the same text named.conf includes, so one file serves both. A file holding only
the base64 secret is accepted too (then the config gives name and algorithm).
Errors name the file and what to fix; the secret is kept out of ``repr`` and
out of every message.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from pathlib import Path

import dns.name
import dns.tsig

_KEY_BLOCK = re.compile(r'key\s+("([^"]+)"|([^\s{]+))\s*\{(.*?)\}\s*;?', re.DOTALL)
_ALGORITHM = re.compile(r'algorithm\s+"?([A-Za-z0-9.-]+)"?\s*;')
_SECRET = re.compile(r'secret\s+"([^"]+)"\s*;')
_COMMENT = re.compile(r"(#|//)[^\n]*|/\*.*?\*/", re.DOTALL)
_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]+$")


class TsigKeyError(Exception):
    """The key file is missing or malformed; the message names the file, never the secret."""


@dataclass(frozen=True, slots=True)
class TsigKey:
    """A TSIG key: name and algorithm are printable, the secret is not."""

    name: str
    algorithm: str
    secret: str = field(repr=False)

    def to_dnspython(self) -> dns.tsig.Key:
        return dns.tsig.Key(dns.name.from_text(self.name), self.secret, self.algorithm)

    def keyring(self) -> dict[dns.name.Name, dns.tsig.Key]:
        key = self.to_dnspython()
        return {key.name: key}


def parse_key_text(
    text: str, *, source: str, key_name: str | None = None, algorithm: str | None = None
) -> TsigKey:
    """The key named ``key_name`` (or the only key) in BIND key syntax, or a bare secret."""
    cleaned = _COMMENT.sub("", text)
    blocks = list(_KEY_BLOCK.finditer(cleaned))
    if not blocks:
        secret = cleaned.strip()
        if secret and _BASE64.match(secret) and key_name:
            _check_secret(secret, source=source)
            return TsigKey(key_name, algorithm or "hmac-sha256", "".join(secret.split()))
        raise TsigKeyError(
            f'{source}: no \'key "name" {{ algorithm ...; secret "..."; }};\' block found; '
            "create the file with `tsig-keygen -a hmac-sha256 <name> > <file>`"
        )
    found: dict[str, str] = {}
    for block in blocks:
        name = (block.group(2) or block.group(3)).rstrip(".")
        found[name] = block.group(4)
    if key_name is not None:
        wanted = key_name.rstrip(".")
        if wanted not in found:
            raise TsigKeyError(
                f"{source}: no key named {key_name!r}; the file has {', '.join(sorted(found))}"
            )
    elif len(found) == 1:
        wanted = next(iter(found))
    else:
        raise TsigKeyError(
            f"{source}: holds several keys ({', '.join(sorted(found))}); set key_name to pick one"
        )
    body = found[wanted]
    secret_match = _SECRET.search(body)
    if secret_match is None:
        raise TsigKeyError(f"{source}: key {wanted!r} has no 'secret \"...\";' line")
    _check_secret(secret_match.group(1), source=source)
    algorithm_match = _ALGORITHM.search(body)
    file_algorithm = algorithm_match.group(1).lower() if algorithm_match else None
    if algorithm and file_algorithm and algorithm.lower() != file_algorithm:
        raise TsigKeyError(
            f"{source}: key {wanted!r} uses {file_algorithm} but the config says {algorithm}; "
            "make them agree (or leave algorithm out of the config)"
        )
    return TsigKey(wanted, file_algorithm or algorithm or "hmac-sha256", secret_match.group(1))


def load_key_file(
    path: Path, *, key_name: str | None = None, algorithm: str | None = None
) -> TsigKey:
    try:
        text = path.read_text()
    except OSError as error:
        raise TsigKeyError(f"cannot read TSIG key file {path}: {error.strerror}") from None
    key = parse_key_text(text, source=str(path), key_name=key_name, algorithm=algorithm)
    try:
        key.to_dnspython()
    except Exception as error:  # unknown algorithm name and the like
        raise TsigKeyError(
            f"{path}: key {key.name!r} cannot be used ({type(error).__name__}: "
            f"algorithm {key.algorithm!r}?)"
        ) from None
    return key


def _check_secret(secret: str, *, source: str) -> None:
    try:
        base64.b64decode("".join(secret.split()), validate=True)
    except (binascii.Error, ValueError):
        raise TsigKeyError(f"{source}: the secret is not valid base64") from None
