"""Watching the server: the per-request record's consumers (request log, usage ledger, metrics)
and the pages that show them (/metrics, /dashboard)."""
