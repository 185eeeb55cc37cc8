"""When to restart a lab system process (agent, waypoint, DNS, relay) that exited (pure).

The first restart after a process has been up a while is immediate: a waypoint that dies
must be back within a second. A process that keeps crashing waits longer each time,
doubling from ``initial`` to ``cap``, like the kubelet's CrashLoopBackOff; once a process
stays up for ``stable_after`` seconds its next exit counts as a first crash again.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    initial: float = 1.0
    cap: float = 30.0
    stable_after: float = 10.0


@dataclass(frozen=True, slots=True)
class RestartState:
    crashes: int = 0  # consecutive exits, each after less than stable_after seconds up
    restarts: int = 0  # all restarts since the controller started


def restart_delay(crashes: int, policy: RestartPolicy) -> float:
    """Seconds to wait before restarting after the ``crashes``-th exit in a row (1: none)."""
    if crashes <= 1:
        return 0.0
    return min(policy.cap, policy.initial * 2 ** min(crashes - 2, 62))


def on_exit(
    state: RestartState, uptime: float, policy: RestartPolicy
) -> tuple[RestartState, float]:
    """The state after a process exited having run ``uptime`` seconds, and the wait before
    it is started again."""
    crashes = 1 if uptime >= policy.stable_after else state.crashes + 1
    return RestartState(crashes, state.restarts + 1), restart_delay(crashes, policy)
