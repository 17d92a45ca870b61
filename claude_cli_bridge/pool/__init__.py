"""The pool of CLI processes (see ``owner`` for the contract): ``owner`` holds the public face
(``Pool``) and the one task that owns every process's state (``Owner``), ``placement`` its
decisions, ``state`` what that task owns, ``table`` the processes and their tasks, ``records``
the types, ``backoff`` the launch pauses, ``spares`` the spare demand, ``held`` the index of
held conversations."""

from .owner import Pool
from .records import Lease, Obtained, PooledProcess, PoolLimits, new_conversation_id

__all__ = ["Lease", "Obtained", "Pool", "PoolLimits", "PooledProcess", "new_conversation_id"]
