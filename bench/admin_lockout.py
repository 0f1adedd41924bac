"""Admin sign-in under a password guesser: the old guard (one count for the whole server) against
the new one (kb.auth.PasswordGuard: per session, per address, a global cap), on a fake clock.

For one simulated hour an attacker tries a wrong password every 0.1 s (36,000 tries) while the
admin types the right one every 15 s (240 tries) from a session of their own. For each attacker
strategy it prints how many of the admin's tries got in and how many of the attacker's guesses
were compared at all (a guess the guard refuses before comparing tells the attacker nothing).

    .venv/bin/python bench/admin_lockout.py [--json bench/results/admin_lockout.json]

No Streamlit and no real time: the page's only part is to tell the guard who the client is, and
here the script does that itself.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kb.auth import Client, PasswordGuard, TooManyAttempts, password_matches  # noqa: E402
from kb.config import Settings  # noqa: E402

HOUR_S = 3600.0
ATTACK_EVERY_S = 0.1
ADMIN_EVERY_S = 15.0
ADMIN_FIRST_S = 7.55  # the admin's first try comes after the attack has begun (and off the 0.1 s grid)
PASSWORD = "correct horse battery staple"
ADMIN_ADDRESS = "192.0.2.10"
ATTACKER_ADDRESS = "203.0.113.7"
PROXY_ADDRESS = "198.51.100.1"  # an office's egress proxy or NAT: everyone behind it has this address


class OldPasswordGuard:
    """The guard as it was at commit 8eb3336 (kb/auth.py), kept verbatim as the baseline: one
    count of wrong passwords in a row for the whole process."""

    FREE_ATTEMPTS = 5
    MAX_WAIT_S = 60.0

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._failures = 0
        self._last_failure = 0.0
        self._lock = threading.Lock()

    def check(self, given: str, settings: Settings) -> bool:
        with self._lock:
            wait = self._wait_left()
            if wait > 0:
                raise TooManyAttempts(wait)
            if password_matches(given, settings):
                self._failures = 0
                return True
            self._failures += 1
            self._last_failure = self._clock()
            return False

    def _wait_left(self) -> float:
        beyond = self._failures - self.FREE_ATTEMPTS
        if beyond < 0:
            return 0.0
        return self._last_failure + min(2.0 ** (beyond + 1), self.MAX_WAIT_S) - self._clock()


@dataclass(frozen=True)
class Strategy:
    name: str
    attacker: Callable[[int], Client] | None  # the client of the attacker's n-th guess
    admin_address: str = ADMIN_ADDRESS
    attack_starts_s: float = 0.0


def nth_address(base: str, n: int) -> str:
    return str(ipaddress.ip_address(base) + n)


STRATEGIES = (
    Strategy("no attacker (sanity check)", None),
    Strategy("one session, every 0.1 s", lambda n: Client("attacker", ATTACKER_ADDRESS)),
    Strategy("a new session per guess, one address", lambda n: Client(f"attacker-{n}", ATTACKER_ADDRESS)),
    Strategy("a new session per guess, 50 addresses in turn",
             lambda n: Client(f"attacker-{n}", nth_address("198.18.0.0", n % 50))),
    Strategy("a new session and a new address per guess",
             lambda n: Client(f"attacker-{n}", nth_address("198.18.0.0", n))),
    Strategy("behind the admin's proxy, one session",
             lambda n: Client("attacker", PROXY_ADDRESS), admin_address=PROXY_ADDRESS),
    Strategy("behind the admin's proxy, a new session per guess",
             lambda n: Client(f"attacker-{n}", PROXY_ADDRESS), admin_address=PROXY_ADDRESS),
    Strategy("the same, admin signed in once before the attack",
             lambda n: Client(f"attacker-{n}", PROXY_ADDRESS), admin_address=PROXY_ADDRESS,
             attack_starts_s=ADMIN_FIRST_S + 1.0),
)


@dataclass
class Outcome:
    admin_in: int
    admin_tries: int
    attacker_compared: int
    attacker_tries: int


def events(strategy: Strategy) -> Iterator[tuple[float, str, int]]:
    """(time, who, n) in time order; the attacker's tries are counted in steps of 0.1 s from its start."""
    admin = [(ADMIN_FIRST_S + k * ADMIN_EVERY_S, "admin", k) for k in range(int(HOUR_S / ADMIN_EVERY_S))]
    attack = []
    if strategy.attacker is not None:
        steps = math.ceil((HOUR_S - strategy.attack_starts_s) / ATTACK_EVERY_S)
        attack = [(strategy.attack_starts_s + n * ATTACK_EVERY_S, "attacker", n) for n in range(steps)]
    yield from sorted(admin + attack)


def simulate(strategy: Strategy, new_guard: bool, settings: Settings) -> Outcome:
    now = [0.0]
    guard = PasswordGuard(clock=lambda: now[0]) if new_guard else OldPasswordGuard(clock=lambda: now[0])
    admin = Client("admin", strategy.admin_address)
    outcome = Outcome(0, 0, 0, 0)
    for at, who, n in events(strategy):
        now[0] = at
        client = admin if who == "admin" else strategy.attacker(n)  # type: ignore[misc]
        given = PASSWORD if who == "admin" else f"guess-{n}"
        try:
            right = guard.check(given, settings, client) if new_guard else guard.check(given, settings)
        except TooManyAttempts:
            right, compared = False, False
        else:
            compared = True
        if who == "admin":
            outcome.admin_tries += 1
            outcome.admin_in += right
        else:
            outcome.attacker_tries += 1
            outcome.attacker_compared += compared
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    logging.getLogger("kb.auth").setLevel(logging.ERROR)  # the guard's "someone may be guessing" warnings
    settings = Settings(admin_password=PASSWORD, data_dir=Path("/nonexistent"))
    print(f"one simulated hour; attacker every {ATTACK_EVERY_S} s, admin every {ADMIN_EVERY_S:g} s; new guard: "
          f"{PasswordGuard.FREE_ATTEMPTS} free, waits up to {PasswordGuard.MAX_WAIT_S:g} s, global cap "
          f"{PasswordGuard.GLOBAL_CAP} wrong / {PasswordGuard.GLOBAL_WINDOW_S:g} s\n")
    header = ("attacker strategy", "old: admin in", "old: guesses compared", "new: admin in", "new: guesses compared")
    rows, results = [], []
    started = time.perf_counter()
    for strategy in STRATEGIES:
        old, new = simulate(strategy, False, settings), simulate(strategy, True, settings)
        results.append({"strategy": strategy.name, "old": asdict(old), "new": asdict(new)})
        rows.append((
            strategy.name,
            f"{old.admin_in} / {old.admin_tries}", f"{old.attacker_compared:,} / {old.attacker_tries:,}",
            f"{new.admin_in} / {new.admin_tries}", f"{new.attacker_compared:,} / {new.attacker_tries:,}",
        ))
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")
    print(f"\n({time.perf_counter() - started:.1f} s of real time)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
