"""Held conversations: the index of idle processes that hold a conversation's history, used
only without workers (UPSTREAM_TAP=off, or a CLI the ``workers`` probe refused).

A held process serves exactly the history it holds (by fingerprint, within its tenant) for
the same launch profile, and a client's conversation id (``key``) names at most one. The
index only answers and records; the pool (``owner``) retires what it returns.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

from ..cli.profile import Profile
from .records import Entry

Slot = tuple[Profile, str]  # (launch profile, history fingerprint within the tenant)


class HeldConversations:
    def __init__(self) -> None:
        self.by_slot: OrderedDict[Slot, Entry] = OrderedDict()  # least recently used first
        self.by_key: dict[str, Entry] = {}

    def __len__(self) -> int:
        return len(self.by_slot)

    def take(self, profile: Profile, fingerprint: str) -> Entry | None:
        """The entry holding exactly this history for this profile, out of the index."""
        return self.by_slot.pop((profile, fingerprint), None)

    def hold(self, entry: Entry, key: str | None) -> list[Entry]:
        """Index ``entry`` (its fingerprint already set) under its slot and ``key``; returns the
        entries it replaces (the same slot, or the same conversation moved on), to retire."""
        replaced = []
        slot = (entry.profile, entry.fingerprint)
        previous = self.by_slot.pop(slot, None)
        if previous is not None and previous is not entry:
            replaced.append(previous)
        self.by_slot[slot] = entry
        if key is not None:
            stale = self.by_key.get(key)
            if stale is not None and stale is not entry:
                replaced.append(stale)  # the same conversation, moved on: the old one can never match
            self.by_key[key] = entry
            entry.key = key
        return replaced

    def oldest(self) -> Entry | None:
        return next(iter(self.by_slot.values()), None)

    def diverged(self, key: str, profile: Profile, fingerprint: str) -> Entry | None:
        """The entry a conversation id names when it holds another history (edited,
        regenerated, trimmed): it can never match again."""
        entry = self.by_key.get(key)
        if entry is not None and (entry.profile, entry.fingerprint) != (profile, fingerprint):
            return entry
        return None

    def release_key(self, entry: Entry) -> None:
        if entry.key is not None:
            self.by_key.pop(entry.key, None)
            entry.key = None

    def remove(self, entry: Entry) -> None:
        if self.by_slot.get((entry.profile, entry.fingerprint)) is entry:
            del self.by_slot[(entry.profile, entry.fingerprint)]
        if entry.key is not None and self.by_key.get(entry.key) is entry:
            del self.by_key[entry.key]
        entry.key = None

    def account_of(self, profile: Profile, fingerprint: str) -> str | None:
        """The account of a held process with this history and this profile on any account."""
        for held_profile, held_fingerprint in self.by_slot:
            if held_fingerprint == fingerprint and held_profile == dataclasses.replace(
                profile, account=held_profile.account
            ):
                return held_profile.account
        return None
