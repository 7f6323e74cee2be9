"""Secrets at rest (OWASP ASVS 6.4.1): the values of secret keys in stored settings (the
AMI secret, webhook secrets) are encrypted with AES-256-GCM under a key derived (HKDF-
SHA256) from the install's secret key, so a copy of the database alone (a backup, a stolen
file, a read-only SQL account) does not give the PBX password away.

A sealed value is the text ``enc:v1:<base64url(nonce | ciphertext)>``; anything else is a
plain value from before (``seal_tree`` encrypts it on the next start).  The key never
leaves the process; changing the install's secret key makes the stored secrets unreadable,
and the admin enters them again.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "enc:v1:"
_INFO = b"switchboard-crm settings secrets v1"
_AAD = b"crm-setting"


class SecretUnreadable(ValueError):
    """A sealed value this key cannot open (the install's secret key changed)."""


class SecretBox:
    def __init__(self, install_key: bytes) -> None:
        if not install_key:
            raise ValueError("an empty install key")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
            install_key
        )
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"

    @staticmethod
    def is_sealed(value: Any) -> bool:
        return isinstance(value, str) and value.startswith(PREFIX)

    def seal(self, plain: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plain.encode(), _AAD)
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, value: str) -> str:
        if not self.is_sealed(value):
            return value
        try:
            raw = base64.urlsafe_b64decode(value[len(PREFIX):].encode())
            return self._aead.decrypt(raw[:12], raw[12:], _AAD).decode()
        except (InvalidTag, ValueError) as exc:
            raise SecretUnreadable("a stored secret cannot be decrypted with this key") from exc


def map_secrets(value: Any, is_secret: Callable[[str], bool],
                fn: Callable[[str], Any]) -> Any:  # fmt: skip
    """``value`` with ``fn`` applied to every text under a secret key, at any depth
    (dicts in lists too: ``webhooks.targets[].secret``)."""
    if isinstance(value, dict):
        return {k: fn(v) if is_secret(str(k)) and isinstance(v, str) and v
                else map_secrets(v, is_secret, fn) for k, v in value.items()}  # fmt: skip
    if isinstance(value, list):
        return [map_secrets(v, is_secret, fn) for v in value]
    return value


def has_plain_secret(value: Any, is_secret: Callable[[str], bool]) -> bool:
    found: list[bool] = []
    map_secrets(value, is_secret, lambda v: found.append(not SecretBox.is_sealed(v)))
    return any(found)
