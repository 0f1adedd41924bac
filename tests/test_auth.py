"""Admin actions are refused by the library call itself, whatever page (or script) calls it."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb.auth import (
    LOCAL_ADMIN, Actor, NotAuthorized, PasswordGuard, TooManyAttempts, is_admin, password_matches, require_admin,
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


def test_wrong_passwords_in_a_row_make_the_next_attempts_wait_longer(tmp_path: Path):
    configured = settings(tmp_path, KB_ADMIN_PASSWORD="s3cret-pass")
    now = [1000.0]
    guard = PasswordGuard(clock=lambda: now[0])
    for _ in range(PasswordGuard.FREE_ATTEMPTS):
        assert guard.check("guess", configured) is False
    with pytest.raises(TooManyAttempts, match="try again in 2 s") as refused:
        guard.check("s3cret-pass", configured)  # even the right one waits: nothing is compared while locked
    assert refused.value.wait_s == 2.0
    now[0] += 2.0
    assert guard.check("guess", configured) is False  # the sixth wrong one: the next waits 4 s
    now[0] += 3.0
    with pytest.raises(TooManyAttempts, match="try again in 1 s"):
        guard.check("s3cret-pass", configured)
    now[0] += 1.0
    assert guard.check("s3cret-pass", configured) is True  # right: the count starts again
    assert guard.check("guess", configured) is False  # a first wrong one again, no wait
    for _ in range(20):
        now[0] += PasswordGuard.MAX_WAIT_S
        guard.check("guess", configured)
    with pytest.raises(TooManyAttempts) as capped:
        guard.check("guess", configured)
    assert capped.value.wait_s == PasswordGuard.MAX_WAIT_S  # the wait stops growing at a minute


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
            assert kb.feedback_csv(admin).startswith("id,created_at,user,rating")
    finally:
        kb.close()


def test_the_password_never_shows_in_an_actor_or_in_settings(tmp_path: Path):
    actor = Actor(name="ann", password="hunter2-secret")
    assert "hunter2-secret" not in repr(actor)
    assert "hunter2-secret" not in repr(settings(tmp_path, KB_ADMIN_PASSWORD="hunter2-secret"))
