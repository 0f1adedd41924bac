"""Who may do what: every admin action checks its actor here, in the library call that performs it.

The app builds an `Actor` from the session (`actor_from_login`: the verified e-mail of a user signed
in with Streamlit's OIDC login, the admin password typed into the Admin page, which `PasswordGuard`
lets through at a guessing-proof pace); the command line acts as `LOCAL_ADMIN`, since
whoever runs `kb` on the server already owns the data directory. The check happens again on every
action, so a page that shows a button by mistake still cannot delete anything.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kb.config import Settings
from kb.errors import NotAuthorized

ANONYMOUS = "anonymous"
UNVERIFIED = " (unverified)"  # appended to the name of a login whose e-mail the provider did not verify
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Actor:
    """The person behind a request and the credentials they presented."""

    name: str = ANONYMOUS  # shown in the catalog (uploader, feedback author)
    email: str = ""  # only from a verified OIDC login
    password: str = field(default="", repr=False)  # the admin password, when the user typed one
    local: bool = False  # the machine owner at the command line
    groups: tuple[str, ...] = ()  # whose restricted documents this person may see
    unverified_email: str = ""  # an e-mail the login carried without email_verified: shown, never trusted


LOCAL_ADMIN = Actor(name="local admin", local=True)


def password_matches(given: str, settings: Settings) -> bool:
    """Constant-time comparison with the configured admin password; False when none is configured."""
    expected = settings.admin_password.get_secret_value()
    if not expected or not given:
        return False
    return hmac.compare_digest(_digest(given), _digest(expected))


def _digest(text: str) -> bytes:
    """Comparing fixed-size digests keeps the time independent of both lengths, not only the contents."""
    return hashlib.sha256(text.encode("utf-8")).digest()


class TooManyAttempts(NotAuthorized):
    """Wrong admin passwords: the next attempt from this client must wait `wait_s` seconds."""

    def __init__(self, wait_s: float):
        super().__init__(f"Too many wrong passwords: try again in {math.ceil(wait_s)} s.")
        self.wait_s = wait_s


@dataclass(frozen=True)
class Client:
    """Who is typing a password, as far as the server can tell.

    `session` is a random token the server keeps in the session's state (the browser cannot choose
    it); `address` is the connection's peer address as the web server resolved it (Streamlit 1.67's
    uvicorn takes it from X-Forwarded-For only when the peer is a trusted proxy, by default 127.0.0.1
    and ::1, `FORWARDED_ALLOW_IPS` otherwise), or None when unknown (loopback, tests)."""

    session: str
    address: str | None = None


UNKNOWN_ADDRESS = "unknown"


def address_key(address: str | None) -> str:
    """The address a client is counted under: IPv6 by its /64 (one subscriber's network, which a
    guesser could otherwise rotate through for free), IPv4 as it is; unknown addresses share one key."""
    if not address:
        return UNKNOWN_ADDRESS
    try:
        parsed = ipaddress.ip_address(address.strip())
    except ValueError:
        return address.strip()
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0  # the last wrong password: the back-off counts from here
    seen: float = 0.0  # the last attempt, refused ones included: forgotten FORGET_AFTER_S after it


class PasswordGuard:
    """Slows down guessing the admin password without locking the admin out.

    The rules, in the order they are applied (one guard per process, for every session):

    1. Each session may type FREE_ATTEMPTS wrong passwords in a row; after that each attempt must
       come 2, 4, 8 ... (at most MAX_WAIT_S) seconds after its last wrong one. The right one resets it.
    2. Each address (`address_key`) may have FREE_ATTEMPTS sessions that typed a wrong password;
       after that every session from it waits the same way. It counts sessions, not passwords, so one
       guesser behind a shared proxy is slowed by rule 1 and does not lock out the others behind it.
    3. While the whole server saw GLOBAL_CAP or more wrong passwords in the last GLOBAL_WINDOW_S
       seconds (a guessing storm), only clients with a clean history are compared: a session that
       typed a wrong password, or one from an address past its free attempts, waits until the
       window falls below the cap. A clean client (a new session, or one that never typed a wrong
       password, from an address within its allowance) never waits for it, so a storm cannot refuse
       an admin who has not typed a wrong password; one who has opens a new tab.
    4. A session that typed the right password before is only slowed by rule 1 (its own wrong
       passwords): it already knows the password, so its attempts are not guesses.

    What no rule can do: tell apart clients that look the same. A guesser with a new session and a
    new address for every guess (a botnet, or a proxy that lets clients choose X-Forwarded-For)
    looks like a new admin every time and is not slowed at all; one with a new session for every
    guess behind the admin's own proxy or NAT makes the admin wait with it, unless the admin's
    session signed in before (rule 4). A long random password is what protects then.

    Failures are forgotten FORGET_AFTER_S after the client's last attempt (refused ones included,
    so waiting out a storm does not wipe them), and at most MAX_RECORDS sessions and addresses are
    remembered (the least recently seen go first), so a flood of fresh clients cannot exhaust memory.
    """

    FREE_ATTEMPTS = 5
    MAX_WAIT_S = 60.0
    GLOBAL_CAP = 30  # a few admins mistyping never get near it
    GLOBAL_WINDOW_S = 600.0
    FORGET_AFTER_S = 900.0
    MAX_RECORDS = 10_000

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._sessions: OrderedDict[str, _Failures] = OrderedDict()  # least recently seen first
        self._addresses: OrderedDict[str, _Failures] = OrderedDict()
        self._proven: OrderedDict[str, None] = OrderedDict()  # sessions that typed the right password
        self._recent: deque[float] = deque()  # times of the wrong passwords in the global window
        self._warned_at = -math.inf
        self._lock = threading.Lock()

    def check(self, given: str, settings: Settings, client: Client) -> bool:
        """Whether `given` is the admin password; raises TooManyAttempts instead of comparing while
        this client must wait."""
        with self._lock:
            now = self._clock()
            self._forget(now)
            wait = self._wait_left(client, now)
            if wait > 0:
                self._touch(client, now)  # still trying: not forgotten, but the wait does not grow
                raise TooManyAttempts(wait)
            if password_matches(given, settings):
                self._sessions.pop(client.session, None)
                self._proven[client.session] = None
                self._proven.move_to_end(client.session)
                _trim(self._proven, self.MAX_RECORDS)
                return True
            self._count_failure(client, now)
            return False

    def wait_s(self, client: Client) -> float:
        """Seconds `client` must wait before its next attempt is compared (0 when it may try now)."""
        with self._lock:
            now = self._clock()
            self._forget(now)
            return max(0.0, self._wait_left(client, now))

    def _wait_left(self, client: Client, now: float) -> float:
        session = self._sessions.get(client.session)
        wait = self._backoff_left(session, now)
        if client.session in self._proven:
            return wait
        address = self._addresses.get(address_key(client.address))
        wait = max(wait, self._backoff_left(address, now))
        clean = session is None and self._within(address)  # a session's record exists only after a wrong one
        if len(self._recent) >= self.GLOBAL_CAP and not clean:
            # the window falls below the cap once all but GLOBAL_CAP - 1 of its wrong passwords left it
            wait = max(wait, self._recent[len(self._recent) - self.GLOBAL_CAP] + self.GLOBAL_WINDOW_S - now)
        return wait

    def _within(self, failures: _Failures | None) -> bool:
        """Whether this session or address is still within its free attempts."""
        return failures is None or failures.count < self.FREE_ATTEMPTS

    def _backoff_left(self, failures: _Failures | None, now: float) -> float:
        if failures is None or failures.count < self.FREE_ATTEMPTS:
            return 0.0
        beyond = min(failures.count - self.FREE_ATTEMPTS + 1, 16)  # 16: the wait is capped long before
        return failures.last + min(2.0**beyond, self.MAX_WAIT_S) - now

    def _count_failure(self, client: Client, now: float) -> None:
        proven = client.session in self._proven
        session = _bump(self._sessions, client.session, now)
        _trim(self._sessions, self.MAX_RECORDS)
        if proven:  # an admin's typo: not a guess, so neither its address nor the server pays for it
            return
        if session.count == 1:  # a session's first wrong password counts on its address
            _bump(self._addresses, address_key(client.address), now)
            _trim(self._addresses, self.MAX_RECORDS)
        self._recent.append(now)
        if len(self._recent) >= self.GLOBAL_CAP and now - self._warned_at >= self.GLOBAL_WINDOW_S:
            self._warned_at = now
            log.warning("%d wrong admin passwords in the last %.0f s: someone may be guessing it; only clients "
                        "with a clean history are compared until it stops", len(self._recent), self.GLOBAL_WINDOW_S)

    def _touch(self, client: Client, now: float) -> None:
        for table, key in ((self._sessions, client.session), (self._addresses, address_key(client.address))):
            if key in table:
                table[key].seen = now
                table.move_to_end(key)

    def _forget(self, now: float) -> None:
        for table in (self._sessions, self._addresses):
            while table and next(iter(table.values())).seen < now - self.FORGET_AFTER_S:
                table.popitem(last=False)
        while self._recent and self._recent[0] <= now - self.GLOBAL_WINDOW_S:
            self._recent.popleft()


def _bump(table: OrderedDict[str, _Failures], key: str, now: float) -> _Failures:
    failures = table.pop(key, None) or _Failures()
    failures.count += 1
    failures.last = failures.seen = now
    table[key] = failures  # most recently seen last, so the oldest are forgotten first
    return failures


def _trim(table: OrderedDict, size: int) -> None:
    while len(table) > size:
        table.popitem(last=False)


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


def actor_from_login(claims: Mapping[str, Any] | None, settings: Settings, password: str = "") -> Actor:
    """The actor for an OIDC login's ID-token claims (`st.user`), or for no login (None).

    Only an e-mail the identity provider verified (`email_verified` true) makes an admin
    (KB_ADMIN_EMAILS) or is looked up in the configured groups (KB_USER_GROUPS): anyone can register
    an account with someone else's address at many providers. An unverified e-mail is shown as
    "x@example.com (unverified)", so the uploader and feedback author in the catalog never pass for the
    real owner, and gets the groups the provider put in a `groups` claim, else anonymous's groups."""
    if not claims or not claims.get("is_logged_in"):
        return actor_for(ANONYMOUS, settings, password=password)
    groups_claim = claims.get("groups")
    identity_groups = tuple(str(g) for g in groups_claim) if isinstance(groups_claim, (list, tuple)) else None
    email = str(claims.get("email") or "").strip()
    if not email:
        return actor_for(ANONYMOUS, settings, identity_groups, password=password)
    if _claim_is_true(claims.get("email_verified")):
        return actor_for(email, settings, identity_groups, password=password)
    groups = identity_groups if identity_groups is not None else settings.group_map.get(ANONYMOUS, ())
    return Actor(name=email + UNVERIFIED, password=password, groups=tuple(groups), unverified_email=email)


def _claim_is_true(value: object) -> bool:
    """OIDC says a JSON boolean; a few providers send the string "true"."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


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
