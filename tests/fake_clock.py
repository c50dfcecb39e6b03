"""A fake monotonic clock for the retry-budget tests: simulated seconds that only sleeping (and
what a test adds for a simulated call's latency) moves; nothing really sleeps."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FakeClock:
    """Simulated seconds: sleeping and calling DynamoDB move it, nothing else does."""

    now: float = 1000.0  # a real monotonic clock is seldom near 0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds
