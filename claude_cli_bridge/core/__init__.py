"""The neutral turn model: what both APIs translate to and from. No HTTP, no CLI wire."""
