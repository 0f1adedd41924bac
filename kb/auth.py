"""Who may do what: every admin action checks its actor here, in the library call that performs it.

The app builds an `Actor` from the session (the e-mail of a user signed in with Streamlit's OIDC
login, the admin password typed into the Admin page); the command line acts as `LOCAL_ADMIN`, since
whoever runs `kb` on the server already owns the data directory. The check happens again on every
action, so a page that shows a button by mistake still cannot delete anything.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kb.config import Settings

ANONYMOUS = "anonymous"


class NotAuthorized(PermissionError):
    """The actor may not do this; the message says what was refused and why, in one line."""


@dataclass(frozen=True)
class Actor:
    """The person behind a request and the credentials they presented."""

    name: str = ANONYMOUS  # shown in the catalog (uploader, feedback author)
    email: str = ""  # only from a verified OIDC login
    password: str = field(default="", repr=False)  # the admin password, when the user typed one
    local: bool = False  # the machine owner at the command line
    groups: tuple[str, ...] = ()  # whose restricted documents this person may see


LOCAL_ADMIN = Actor(name="local admin", local=True)


def password_matches(given: str, settings: Settings) -> bool:
    """Constant-time comparison with the configured admin password; False when none is configured."""
    expected = settings.admin_password
    if not expected or not given:
        return False
    return hmac.compare_digest(_digest(given), _digest(expected))


def _digest(text: str) -> bytes:
    """Comparing fixed-size digests keeps the time independent of both lengths, not only the contents."""
    return hashlib.sha256(text.encode("utf-8")).digest()


class TooManyAttempts(NotAuthorized):
    """Wrong admin passwords in a row: the next attempt must wait `wait_s` seconds."""

    def __init__(self, wait_s: float):
        super().__init__(f"Too many wrong passwords: try again in {math.ceil(wait_s)} s.")
        self.wait_s = wait_s


class PasswordGuard:
    """Slows down guessing the admin password: after FREE_ATTEMPTS wrong passwords in a row, each
    attempt must come 2, 4, 8 ... (at most MAX_WAIT_S) seconds after the last wrong one; a right one
    resets it. One guard per process, for every session: the app cannot tell clients apart reliably
    (behind a proxy they share an address), and the worst a guesser does to the real admin is a wait
    of a minute (the command line needs no password)."""

    FREE_ATTEMPTS = 5
    MAX_WAIT_S = 60.0

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._failures = 0
        self._last_failure = 0.0
        self._lock = threading.Lock()

    def check(self, given: str, settings: Settings) -> bool:
        """Whether `given` is the admin password; raises TooManyAttempts instead of comparing while locked."""
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


def email_is_admin(email: str, settings: Settings) -> bool:
    return bool(email) and email.strip().lower() in settings.admin_email_set


def is_admin(actor: Actor, settings: Settings) -> bool:
    return actor.local or email_is_admin(actor.email, settings) or password_matches(actor.password, settings)


def actor_for(user: str, settings: Settings, identity_groups: tuple[str, ...] | None = None,
              password: str = "") -> Actor:
    """The actor for a signed-in e-mail or a plain name: groups from the login when it carries them,
    otherwise from configuration (KB_USER_GROUPS / [groups])."""
    email = user if "@" in user else ""
    groups = identity_groups if identity_groups is not None else settings.group_map.get(user.strip().lower(), ())
    return Actor(name=user or ANONYMOUS, email=email, password=password, groups=tuple(groups))


def visible_groups(actor: Actor, settings: Settings) -> tuple[str, ...] | None:
    """The groups whose restricted documents `actor` may see; None means every document (admins)."""
    return None if is_admin(actor, settings) else actor.groups


def may_see(doc_groups: tuple[str, ...], visible: tuple[str, ...] | None) -> bool:
    """A document without groups is for everyone; a restricted one for its groups (and admins)."""
    return visible is None or not doc_groups or bool(set(doc_groups) & set(visible))


def require_admin(actor: Actor, settings: Settings, action: str) -> None:
    """Raise NotAuthorized unless the actor is an admin."""
    if is_admin(actor, settings):
        return
    if not settings.admin_password and not settings.admin_email_set:
        raise NotAuthorized(f"{action} needs an admin, and no admin is configured (see the Admin page)")
    raise NotAuthorized(f"{action} needs an admin; {actor.name} is not signed in as one")
