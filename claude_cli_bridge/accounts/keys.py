"""Client keys: who a request is. ``KeyRing.identify`` turns a presented key into its
``Caller`` (the key's name and what it may do), or None.

Keys come from the accounts file (as SHA-256 hashes; the key itself is stored nowhere) and
from ``BRIDGE_API_KEY`` (plain keys, named ``shared``, which may use every account). A
presented key is hashed once and compared with every known hash in constant time, so the
time taken does not reveal which key matched or how close a guess came.

Names, never keys or hashes, are what logs, the ledger, metrics and the dashboard carry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from ..core.caller import Caller
from .config import AccountsConfig

#: The name the keys of BRIDGE_API_KEY go by.
SHARED_KEY_NAME = "shared"
KEY_PREFIX = "ccb-"


def sha256_hex(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A new random client key (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class _Known:
    digest: bytes
    caller: Caller


class KeyRing:
    """Every key this server accepts. Empty: no key is required (the one anonymous caller)."""

    def __init__(self, config: AccountsConfig, shared_keys: list[str]):
        everything = config.names
        self._shared = [
            _Known(hashlib.sha256(key.encode("utf-8")).digest(), Caller(SHARED_KEY_NAME, everything))
            for key in shared_keys
        ]
        self._known = [_Known(bytes.fromhex(key.key_sha256), key.caller) for key in config.keys] + self._shared
        self.anonymous = Caller(None, everything)

    @property
    def has_shared_keys(self) -> bool:
        return bool(self._shared)

    def replace(self, config: AccountsConfig) -> None:
        """The accounts file read again (``accounts.reload``): its keys, and the shared keys
        and the anonymous caller on its accounts. One assignment each: a request being
        identified sees the old list or the new one."""
        everything = config.names
        shared = Caller(SHARED_KEY_NAME, everything)
        self._shared = [dataclasses.replace(known, caller=shared) for known in self._shared]
        self._known = [_Known(bytes.fromhex(key.key_sha256), key.caller) for key in config.keys] + self._shared
        self.anonymous = Caller(None, everything)

    def named(self) -> list[Caller]:
        """The accounts file's keys as callers (not the shared keys), in file order."""
        shared = {id(known) for known in self._shared}
        return [known.caller for known in self._known if id(known) not in shared]

    @property
    def required(self) -> bool:
        return bool(self._known)

    def identify(self, presented: str | None) -> Caller | None:
        """The caller a presented key belongs to; None for a missing or unknown key. Without
        any keys every request is the anonymous caller."""
        if not self._known:
            return self.anonymous
        if presented is None:
            return None
        digest = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
        found = None
        for known in self._known:  # every one, whatever matched: constant time
            if hmac.compare_digest(digest, known.digest):
                found = known.caller
        return found
