"""Routing policies: which replica a request goes to.

- ``"shared"`` (default): one queue that every idle replica pulls its next batch from, so
  no replica idles while work waits. A replica's weight scales the largest batch it
  takes (the heaviest replica takes `max_batch_size` rows, one of half the weight half
  as many), so a slower replica takes smaller bites.
- ``"round_robin"``: smooth weighted round robin (nginx's), over replicas in service.
- ``"least_outstanding"``: the replica with the fewest queued+running requests per unit
  of weight (ties: lowest index).
- ``"p2c"``: power of two choices: two distinct replicas drawn with probability
  proportional to weight, the one with fewer outstanding requests per weight wins.

The push policies (all but "shared") give each replica its own queue; they are meant
for replicas that cannot pull (remote or device sessions behind a `run` call)."""

from __future__ import annotations

import random
from typing import Sequence

from ..errors import InputError

POLICIES = ("shared", "round_robin", "least_outstanding", "p2c")


class Policy:
    """Chooses a replica among candidates. `pull` policies never choose: replicas pull."""
    name = ""
    pull = False

    def choose(self, candidates: Sequence, outstanding: Sequence[int],
               weights: Sequence[float]) -> int:
        """Index into `candidates` (replica indices) of the chosen one."""
        raise NotImplementedError


class Shared(Policy):
    name = "shared"
    pull = True

    def choose(self, candidates, outstanding, weights):  # pragma: no cover - never routed
        raise RuntimeError("the shared policy pulls; it does not route")


class RoundRobin(Policy):
    name = "round_robin"

    def __init__(self, n: int) -> None:
        self._current = [0.0] * n

    def choose(self, candidates, outstanding, weights):
        total = 0.0
        best = -1
        for j, i in enumerate(candidates):
            self._current[i] += weights[i]
            total += weights[i]
            if best < 0 or self._current[i] > self._current[candidates[best]]:
                best = j
        self._current[candidates[best]] -= total
        return best


class LeastOutstanding(Policy):
    name = "least_outstanding"

    def choose(self, candidates, outstanding, weights):
        return min(range(len(candidates)),
                   key=lambda j: ((outstanding[candidates[j]] + 1) / weights[candidates[j]], j))


class PowerOfTwo(Policy):
    name = "p2c"

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def choose(self, candidates, outstanding, weights):
        if len(candidates) == 1:
            return 0
        w = [weights[i] for i in candidates]
        a = self._rng.choices(range(len(candidates)), weights=w)[0]
        w[a] = 0.0
        b = self._rng.choices(range(len(candidates)), weights=w)[0] if sum(w) > 0 else a
        score = [(outstanding[candidates[j]] + 1) / weights[candidates[j]] for j in (a, b)]
        return a if score[0] <= score[1] else b


def make_policy(policy: str | Policy, n: int) -> Policy:
    """A Policy from its name (or a Policy instance, used as is)."""
    if isinstance(policy, Policy):
        return policy
    if policy == "shared":
        return Shared()
    if policy == "round_robin":
        return RoundRobin(n)
    if policy == "least_outstanding":
        return LeastOutstanding()
    if policy == "p2c":
        return PowerOfTwo()
    raise InputError(f"policy: expected one of {list(POLICIES)} or a Policy, got {policy!r}")
