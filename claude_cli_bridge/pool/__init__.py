"""The pool of CLI processes (see ``owner`` for the contract): ``records`` holds its types,
``backoff`` the launch pauses, ``spares`` the spare demand, ``owner`` the one task that owns
every process's state."""

from .owner import Pool
from .records import Lease, Obtained, PooledProcess, PoolLimits, new_conversation_id

__all__ = ["Lease", "Obtained", "Pool", "PoolLimits", "PooledProcess", "new_conversation_id"]
