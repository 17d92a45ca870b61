"""The turn engine: checks, the plan (model, profile, account), the lease and the run; and the
thinking it keeps for the next turn."""
