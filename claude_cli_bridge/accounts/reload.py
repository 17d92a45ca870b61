"""The accounts file read again without a restart: on SIGHUP and when it changes on disk.

What a reload applies at once: the client keys (a key added, revoked, or given new models,
limits or budgets): the next request is judged by the new file; and the ``[accounts.*]``
entries (logins added, removed or changed), through ``apply_accounts`` (the engine's): the
processes of a removed or changed account are stopped once their turn ends, those of every
other account stay warm. Running turns are never cut. A file that no longer reads keeps the
running configuration and says why, in one log line naming the entry and the fix (no secret:
the loader names variables, never their values); ``/health`` says only that it failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

from .config import AccountsConfig, AccountsFileError, load
from .keys import KeyRing

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0


class AccountsReloader:
    def __init__(
        self,
        running: AccountsConfig,
        keyring: KeyRing,
        environ: Mapping[str, str] | None = None,
        poll_seconds: float = POLL_SECONDS,
        apply_accounts: Callable[[AccountsConfig], object] | None = None,
    ):
        assert running.from_file is not None
        self.path: Path = running.from_file
        self.running = running
        self._keyring = keyring
        self._environ = environ
        self._poll = poll_seconds
        self._apply_accounts = apply_accounts
        self._stamp = self._stat()
        self.reloads = 0
        self.problem = ""  # why the last reload did not apply everything ("" when it did)

    def _stat(self) -> tuple[int, int] | None:
        try:
            info = os.stat(self.path.expanduser())
        except OSError:
            return None
        return info.st_mtime_ns, info.st_size

    def reload(self) -> bool:
        """Read the file again and apply its keys; False when it no longer reads."""
        try:
            config = load(self.path, self._environ)
        except AccountsFileError as exc:
            self.problem = "the accounts file no longer reads (see the log); the running configuration stays"
            log.error("accounts file not reloaded, the running configuration stays: %s", exc)
            return False
        if self.running.keys and not config.keys and not self._keyring.has_shared_keys:
            # The server was started with keys: removing all of them would open every route.
            self.problem = "the accounts file now has no [keys.*]: that would open every route; the running keys stay"
            log.error("accounts file not reloaded: %s", self.problem)
            return False
        self.reloads += 1
        self.problem = ""
        if config.accounts != self.running.accounts:
            if self._apply_accounts is None:
                self.problem = "[accounts.*] entries changed: restart the bridge to apply them (the keys were applied)"
                config = dataclasses.replace(config, accounts=self.running.accounts)
            else:
                # Accounts first: a new key may name a new account.
                self._apply_accounts(config)
        self._keyring.replace(config)
        self.running = config
        log.info("accounts file reloaded: %d accounts, %d keys%s", len(config.accounts), len(config.keys),
                 f"; {self.problem}" if self.problem else "")  # fmt: skip
        return True

    async def watch(self) -> None:
        """Poll the file's modification time and size; reload when they change."""
        while True:
            await asyncio.sleep(self._poll)
            stamp = self._stat()
            if stamp is not None and stamp != self._stamp:
                self._stamp = stamp
                self.reload()

    def status(self) -> dict[str, Any]:
        """For /health (behind the key): reloads so far and what did not apply (no path)."""
        return {"reloads": self.reloads, "problem": self.problem}

    @contextlib.asynccontextmanager
    async def running_in_background(self) -> AsyncIterator[AccountsReloader]:
        """Watch the file and take SIGHUP while the server runs."""
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(self.watch(), name="accounts-reload")
        hup = False
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, self.reload)
            hup = True
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if hup:
                loop.remove_signal_handler(signal.SIGHUP)
