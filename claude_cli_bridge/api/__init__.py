"""The HTTP surfaces. Each API translates from the neutral model only."""
