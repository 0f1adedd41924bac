"""Admin actions are refused by the library call itself, whatever page (or script) calls it."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb.auth import (
    LOCAL_ADMIN, Actor, Client, NotAuthorized, PasswordGuard, TooManyAttempts, actor_from_login, address_key,
    is_admin, password_matches, require_admin, visible_groups,
)
from kb.config import load_settings
from kb.service import KnowledgeBase


def settings(tmp_path: Path, **env: str):
    return load_settings(env={"KB_DATA_DIR": str(tmp_path / "data"), **env}, secrets_file=tmp_path / "none.toml")


def test_password_comparison(tmp_path: Path):
    configured = settings(tmp_path, KB_ADMIN_PASSWORD="s3cret-pass")
    assert password_matches("s3cret-pass", configured)
    assert not password_matches("s3cret-pas", configured) and not password_matches("", configured)
    assert not password_matches("", settings(tmp_path))  # no password configured: nothing matches


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def refused(guard: PasswordGuard, given: str, configured, client: Client) -> bool:
    """True when the guard refused to compare at all (the client must wait)."""
    try:
        guard.check(given, configured, client)
    except TooManyAttempts:
        return True
    return False


def test_wrong_passwords_in_a_row_make_the_next_attempts_of_that_session_wait_longer(tmp_path: Path):
    configured = settings(tmp_path, KB_ADMIN_PASSWORD="s3cret-pass")
    clock = Clock()
    guard = PasswordGuard(clock=clock)
    me = Client("session-1", "192.0.2.1")
    for _ in range(PasswordGuard.FREE_ATTEMPTS):
        assert guard.check("guess", configured, me) is False
    with pytest.raises(TooManyAttempts, match="try again in 2 s") as refusal:
        guard.check("s3cret-pass", configured, me)  # even the right one waits: nothing is compared while locked
    assert refusal.value.wait_s == 2.0 and guard.wait_s(me) == 2.0
    clock.now += 2.0
    assert guard.check("guess", configured, me) is False  # the sixth wrong one: the next waits 4 s
    clock.now += 3.0
    with pytest.raises(TooManyAttempts, match="try again in 1 s"):
        guard.check("s3cret-pass", configured, me)
    clock.now += 1.0
    assert guard.check("s3cret-pass", configured, me) is True  # right: the count starts again
    assert guard.check("guess", configured, me) is False  # a first wrong one again, no wait
    for _ in range(20):
        clock.now += PasswordGuard.MAX_WAIT_S
        guard.check("guess", configured, me)
    with pytest.raises(TooManyAttempts) as capped:
        guard.check("guess", configured, me)
    assert capped.value.wait_s == PasswordGuard.MAX_WAIT_S  # the wait stops growing at a minute


def test_a_guessing_session_does_not_lock_out_the_admin_in_another_session(tmp_path: Path):
    """The finding: 5 wrong passwords in one session refused the right one in every other session."""
    configured = settings(tmp_path, KB_ADMIN_PASSWORD="s3cret-pass")
    clock = Clock()
    guard = PasswordGuard(clock=clock)
    guesser, admin = Client("guesser", "203.0.113.7"), Client("admin", "192.0.2.10")
    behind_the_same_proxy = Client("colleague", "203.0.113.7")
    compared = 0
    for _ in range(600):  # a minute of guessing every 0.1 s
        compared += not refused(guard, "guess", configured, guesser)
        clock.now += 0.1
    assert compared == PasswordGuard.FREE_ATTEMPTS + 4  # 5 free, then after 2, 4, 8, 16 (32 s runs past the minute)
    assert guard.check("s3cret-pass", configured, admin) is True
    # one guessing session behind a shared address slows only itself (addresses count guessing sessions)
    assert guard.check("s3cret-pass", configured, behind_the_same_proxy) is True


def test_fresh_sessions_from_one_address_are_slowed_down_by_the_address(tmp_path: Path):
    configured = settings(tmp_path, KB_ADMIN_PASSWORD="s3cret-pass")
    clock = Clock()
    guard = PasswordGuard(clock=clock)
    admin = Client("admin", "203.0.113.7")
    assert guard.check("s3cret-pass", configured, admin) is True  # signed in before the guessing began
    for n in range(PasswordGuard.FREE_ATTEMPTS):
        assert guard.check("guess", configured, Client(f"fresh-{n}", "203.0.113.7")) is False
    assert refused(guard, "guess", configured, Client("fresh-next", "203.0.113.7"))
    assert guard.wait_s(Client("fresh-next", "203.0.113.7")) == 2.0
    assert not refused(guard, "guess", configured, Client("fresh-elsewhere", "198.51.100.1"))
    # the admin's session proved it knows the password: the address's guessers do not hold it up
    assert guard.check("s3cret-pass", configured, admin) is True
    # IPv6 clients count by their /64, so walking through one network's addresses does not help
    for n in range(PasswordGuard.FREE_ATTEMPTS):
        guard.check("guess", configured, Client(f"v6-{n}", f"2001:db8:1:2::{n + 1}"))
    assert refused(guard, "guess", configured, Client("v6-next", "2001:db8:1:2:ffff::1"))
    assert not refused(guard, "guess", configured, Client("v6-other", "2001:db8:1:3::1"))


def test_address_keys():
    assert address_key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert address_key(" 192.0.2.1 ") == "192.0.2.1"
    assert address_key(None) == address_key("") == "unknown"  # loopback or tests: one shared address
    assert address_key("not-an-ip") == "not-an-ip"


def test_a_guessing_storm_stops_clients_with_wrong_passwords_but_not_clean_ones(tmp_path: Path):
    configured = settings(tmp_path, KB_ADMIN_PASSWORD="s3cret-pass")
    clock = Clock()
    guard = PasswordGuard(clock=clock)
    typist = Client("typist", "192.0.2.50")
    assert guard.check("typo", configured, typist) is False  # one typo: no wait of its own
    for n in range(PasswordGuard.GLOBAL_CAP):  # a storm: every guess from a new session and a new address
        assert guard.check("guess", configured, Client(f"bot-{n}", f"198.18.0.{n + 1}")) is False
    clock.now += 1.0
    assert refused(guard, "typo", configured, typist)  # a session with a wrong password waits for the storm
    assert 0 < guard.wait_s(typist) <= PasswordGuard.GLOBAL_WINDOW_S
    assert guard.check("s3cret-pass", configured, Client("new-tab", "192.0.2.50")) is True  # a clean one never
    assert guard.check("typo", configured, Client("another", "192.0.2.11")) is False  # compared (and wrong)
    for n in range(PasswordGuard.FREE_ATTEMPTS):  # an address past its free sessions waits too
        guard.check("guess", configured, Client(f"pool-{n}", "203.0.113.9"))
    clock.now += PasswordGuard.MAX_WAIT_S  # its own back-off is over, the storm is not
    assert guard.wait_s(Client("pool-next", "203.0.113.9")) > 0
    clock.now += PasswordGuard.GLOBAL_WINDOW_S
    assert guard.check("s3cret-pass", configured, typist) is True  # the storm left the window
    assert guard.wait_s(Client("pool-next", "203.0.113.9")) == 0.0


def test_failures_are_forgotten_and_memory_stays_bounded(tmp_path: Path):
    configured = settings(tmp_path, KB_ADMIN_PASSWORD="s3cret-pass")
    clock = Clock()
    guard = PasswordGuard(clock=clock)
    me = Client("me", "192.0.2.1")
    for _ in range(PasswordGuard.FREE_ATTEMPTS + 1):
        guard.check("typo", configured, me)
        clock.now += 2.0
    clock.now += PasswordGuard.FORGET_AFTER_S
    for _ in range(PasswordGuard.FREE_ATTEMPTS):  # a clean slate: five free attempts again
        assert guard.check("typo", configured, me) is False
    waiting = Client("waiting", "192.0.2.2")  # one that keeps trying while refused is not forgotten
    for n in range(PasswordGuard.FREE_ATTEMPTS):
        guard.check("guess", configured, Client(f"pool-{n}", "192.0.2.2"))
    for _ in range(PasswordGuard.GLOBAL_CAP):  # a storm, so the address stays refused after its back-off
        guard.check("guess", configured, Client(f"bot-{_}", f"198.18.1.{_}"))
    compared = 0
    for _ in range(int(PasswordGuard.FORGET_AFTER_S / 60) + 2):
        clock.now += 60.0
        compared += not refused(guard, "guess", configured, waiting)
        for n in range(PasswordGuard.GLOBAL_CAP):  # the storm goes on, from new clients
            guard.check("guess", configured, Client(f"bot-{clock.now}-{n}", f"198.19.{n}.{int(clock.now) % 250}"))
    assert compared == 0 and guard.wait_s(waiting) > 0
    small = PasswordGuard(clock=clock)
    small.MAX_RECORDS = 3
    for n in range(PasswordGuard.FREE_ATTEMPTS):
        small.check("guess", configured, Client("old", f"192.0.2.{n}"))
    assert small.wait_s(Client("old")) > 0
    for n in range(3):  # three newer failing sessions push the oldest one out
        small.check("guess", configured, Client(f"new-{n}", f"198.51.100.{n}"))
    assert small.wait_s(Client("old", "203.0.113.99")) == 0.0
    assert len(small._sessions) <= 3 and len(small._addresses) <= 3


def test_admin_emails_from_the_environment_or_the_secrets_file(tmp_path: Path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[admin]\nemails = ["Boss@Example.com", "it@example.com"]\n')
    from_file = load_settings(env={}, secrets_file=secrets)
    assert from_file.admin_email_set == {"boss@example.com", "it@example.com"}
    from_env = settings(tmp_path, KB_ADMIN_EMAILS=" a@example.com, ,b@example.com")
    assert from_env.admin_email_set == {"a@example.com", "b@example.com"}
    assert is_admin(Actor(name="a", email="A@example.com"), from_env)
    assert not is_admin(Actor(name="c", email="c@example.com"), from_env)


def test_refusals_say_why(tmp_path: Path):
    with pytest.raises(NotAuthorized, match="no admin is configured"):
        require_admin(Actor(), settings(tmp_path), "re-indexing")
    with pytest.raises(NotAuthorized, match="re-indexing needs an admin; anonymous is not signed in as one"):
        require_admin(Actor(password="wrong"), settings(tmp_path, KB_ADMIN_PASSWORD="right"), "re-indexing")
    require_admin(LOCAL_ADMIN, settings(tmp_path), "re-indexing")  # the command line needs no configuration


def test_service_refuses_admin_actions_to_non_admins(tmp_path: Path):
    kb = KnowledgeBase(settings(tmp_path, KB_ADMIN_PASSWORD="right", KB_ADMIN_EMAILS="boss@example.com"))
    try:
        for intruder in (Actor(), Actor(name="x", password="wrong"), Actor(name="x", email="x@example.com")):
            with pytest.raises(NotAuthorized):
                kb.submit_delete("leave.md", intruder)
            with pytest.raises(NotAuthorized):
                kb.submit_reindex(intruder)
            with pytest.raises(NotAuthorized):
                kb.feedback_csv(intruder)
            with pytest.raises(NotAuthorized):
                kb.feedback_log(intruder)
        assert kb.catalog.queued_count() == 0  # nothing was queued by the refused calls
        for admin in (Actor(password="right"), Actor(name="b", email="boss@example.com"), LOCAL_ADMIN):
            assert kb.submit_reindex(admin) > 0
            assert kb.feedback_csv(admin).startswith('"id","created_at","user","rating"')
    finally:
        kb.close()


def test_the_password_never_shows_in_an_actor_or_in_settings(tmp_path: Path):
    actor = Actor(name="ann", password="hunter2-secret")
    assert "hunter2-secret" not in repr(actor)
    assert "hunter2-secret" not in repr(settings(tmp_path, KB_ADMIN_PASSWORD="hunter2-secret"))


def test_an_oidc_login_makes_an_admin_only_with_a_verified_email(tmp_path: Path):
    configured = settings(tmp_path, KB_ADMIN_EMAILS="boss@example.com", KB_USER_GROUPS="boss@example.com=hr;anonymous=")
    verified = actor_from_login({"is_logged_in": True, "email": "Boss@Example.com", "email_verified": True}, configured)
    assert is_admin(verified, configured) and verified.name == "Boss@Example.com" and verified.groups == ("hr",)
    as_text = actor_from_login({"is_logged_in": True, "email": "boss@example.com", "email_verified": "true"}, configured)
    assert is_admin(as_text, configured)  # a provider that sends the string "true"
    for unverified in (False, "false", None, 1):
        claims = {"is_logged_in": True, "email": "boss@example.com"}
        if unverified is not None:
            claims["email_verified"] = unverified
        actor = actor_from_login(claims, configured)
        assert not is_admin(actor, configured), claims
        with pytest.raises(NotAuthorized):
            require_admin(actor, configured, "re-indexing")
        assert actor.email == "" and actor.unverified_email == "boss@example.com"
        assert actor.name == "boss@example.com (unverified)"  # never recorded as the real boss
        assert actor.groups == () and visible_groups(actor, configured) == ()  # not the e-mail's configured groups


def test_the_providers_groups_claim_counts_even_for_an_unverified_email(tmp_path: Path):
    configured = settings(tmp_path, KB_USER_GROUPS="alice@example.com=hr;anonymous=public")
    claims = {"is_logged_in": True, "email": "alice@example.com", "email_verified": False, "groups": ["finance"]}
    assert actor_from_login(claims, configured).groups == ("finance",)
    claims.pop("groups")
    assert actor_from_login(claims, configured).groups == ("public",)  # anonymous's, not alice's
    claims["email_verified"] = True
    assert actor_from_login(claims, configured).groups == ("hr",)


def test_no_login_is_anonymous_with_the_typed_password(tmp_path: Path):
    configured = settings(tmp_path, KB_ADMIN_PASSWORD="right", KB_USER_GROUPS="anonymous=public")
    for claims in (None, {}, {"is_logged_in": False, "email": "boss@example.com", "email_verified": True}):
        actor = actor_from_login(claims, configured, password="right")
        assert actor.name == "anonymous" and actor.email == "" and actor.groups == ("public",)
        assert is_admin(actor, configured)  # by the password
    no_email = actor_from_login({"is_logged_in": True, "email_verified": True}, configured)
    assert no_email.name == "anonymous" and not is_admin(no_email, configured)
