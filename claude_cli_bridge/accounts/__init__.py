"""Accounts (the logins turns run on) and client keys (who may use them): the accounts file,
key identification, per-key limits and the choice of account for each turn."""
