"""Stop sequences applied to a text stream.

The CLI has no stop-sequence flag, so the bridge applies them itself: text is passed on
except for a tail that could be the start of a stop sequence, which is held back until it
is known not to be. When a stop sequence appears, the text before it is released and the
stream is over (the engine then interrupts the CLI so the upstream stops generating).
"""

from __future__ import annotations


class StopScanner:
    def __init__(self, stops: tuple[str, ...] | list[str]):
        self.stops = tuple(stop for stop in stops if stop)
        self.hit = False
        self.matched: str | None = None  # the stop sequence that matched, once ``hit``
        self._held = ""

    def feed(self, text: str) -> str:
        """Return the text that can be released now; sets ``hit`` when a stop sequence matched."""
        if not self.stops:
            return text
        if self.hit:
            return ""
        buffer = self._held + text
        found = [(index, stop) for stop in self.stops if (index := buffer.find(stop)) >= 0]
        if found:
            first, self.matched = min(found, key=lambda match: match[0])
            self.hit = True
            self._held = ""
            return buffer[:first]
        keep = self._partial_suffix(buffer)
        self._held = buffer[len(buffer) - keep :] if keep else ""
        return buffer[: len(buffer) - keep]

    def flush(self) -> str:
        """At the end of the stream, release what was held back."""
        held, self._held = self._held, ""
        return "" if self.hit else held

    def _partial_suffix(self, buffer: str) -> int:
        """Length of the longest suffix of ``buffer`` that is a proper prefix of a stop sequence."""
        longest = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(buffer)), longest, -1):
                if buffer.endswith(stop[:size]):
                    longest = size
                    break
        return longest
