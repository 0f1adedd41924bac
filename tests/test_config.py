import logging
import os
from pathlib import Path

import pytest

import kb
from kb import config
from kb.answering import build_llm
from kb.config import ConfigError, Settings, load_settings, settings_table


def test_defaults_work_offline(tmp_path: Path):
    settings = load_settings(env={}, secrets_file=tmp_path / "absent.toml")
    assert settings.qdrant_url == ""
    assert settings.embedding == ""
    assert not settings.llm_enabled
    assert settings.data_dir.name == "kb"


def test_environment_overrides_secrets_file(tmp_path: Path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('KB_TOP_K = 9\nOPENAI_API_KEY = "sk-file"\n[admin]\npassword = "s3cret"\n')
    settings = load_settings(env={"KB_TOP_K": "3", "KB_DATA_DIR": str(tmp_path)}, secrets_file=secrets)
    assert settings.top_k == 3
    assert settings.data_dir == tmp_path
    assert settings.openai_api_key.get_secret_value() == "sk-file" and settings.llm_enabled
    assert settings.admin_password.get_secret_value() == "s3cret"


def test_secrets_never_appear_in_repr(tmp_path: Path):
    settings = load_settings(
        env={"OPENAI_API_KEY": "sk-very-secret", "KB_QDRANT_API_KEY": "qk-secret", "KB_ADMIN_PASSWORD": "pw-secret"},
        secrets_file=tmp_path / "absent.toml",
    )
    text = repr(settings)
    assert "sk-very-secret" not in text and "qk-secret" not in text and "pw-secret" not in text


def test_bad_value_names_the_variable(tmp_path: Path):
    with pytest.raises(ConfigError, match="KB_TOP_K"):
        load_settings(env={"KB_TOP_K": "many"}, secrets_file=tmp_path / "absent.toml")


def test_invalid_secrets_file_is_a_clear_error(tmp_path: Path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text("this is = = not toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(env={}, secrets_file=secrets)


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("KB_CHUNK_WORDS", "0", "must be >= 10"),
        ("KB_TOP_K", "-3", "must be >= 1"),
        ("KB_TIMEOUT", "-1", "must be > 0"),
        ("KB_DENSE_WEIGHT", "7", "must be <= 1"),
        ("KB_MIN_RELEVANCE", "1.5", "must be <= 1"),
        ("KB_MAX_FILE_MB", "0", "must be > 0"),
        ("KB_PARSE_TIMEOUT", "0", "must be > 0"),
        ("KB_PARSE_MEMORY_MB", "16", "must be >= 256"),
        ("KB_OPTIMIZE_AFTER", "0", "must be >= 1"),
        ("KB_TOP_K", "2.5", "must be a whole number"),
        ("KB_DENSE_WEIGHT", "half", "must be a number"),
    ],
)
def test_values_out_of_bounds_are_one_line_naming_the_variable(tmp_path: Path, name: str, value: str, reason: str):
    with pytest.raises(ConfigError) as caught:
        load_settings(env={name: value}, secrets_file=tmp_path / "absent.toml")
    assert str(caught.value) == f"{name}={value}: {reason}"
    assert caught.value.exit_code == 2


def test_bounds_hold_for_direct_construction_and_copies():
    with pytest.raises(ConfigError, match="^KB_TOP_K=0: must be >= 1$"):
        Settings(top_k=0)
    settings = Settings(top_k=3)
    assert settings.replace(chunk_words=60).chunk_words == 60 and settings.replace(chunk_words=60).top_k == 3
    with pytest.raises(ConfigError, match="^KB_CHUNK_WORDS=0: must be >= 10$"):
        settings.replace(chunk_words=0)
    with pytest.raises(ConfigError, match="not a setting"):
        Settings(chunk_size=3)


def test_a_bad_secret_is_named_without_its_value(tmp_path: Path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('OPENAI_API_KEY = "sk-in-file"\nKB_TOP_K = 0\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(env={}, secrets_file=secrets)
    assert str(caught.value) == "KB_TOP_K=0: must be >= 1" and "sk-in-file" not in str(caught.value)


def test_secrets_stay_out_of_repr_str_and_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    settings = Settings(openai_api_key="sk-very-secret", qdrant_api_key="qk-secret", admin_password="pw-secret")
    logging.getLogger("kb.test").warning("settings: %s %r", settings, settings)
    for text in (repr(settings), str(settings), caplog.text, settings.model_dump_json()):
        assert "sk-very-secret" not in text and "qk-secret" not in text and "pw-secret" not in text
    assert settings.admin_password.get_secret_value() == "pw-secret"


def test_secrets_file_named_by_kb_secrets_file(tmp_path: Path):
    secrets = tmp_path / "elsewhere.toml"
    secrets.write_text('KB_TOP_K = 9\n[admin]\npassword = "s3cret"\n')
    settings = load_settings(env={"KB_SECRETS_FILE": str(secrets)})
    assert settings.top_k == 9 and settings.admin_password.get_secret_value() == "s3cret"
    assert settings.secrets_file == secrets

    with pytest.raises(ConfigError, match=f"^KB_SECRETS_FILE={tmp_path / 'missing.toml'}: no such file$"):
        load_settings(env={"KB_SECRETS_FILE": str(tmp_path / "missing.toml")})
    none = load_settings(env={"KB_SECRETS_FILE": os.devnull})
    assert none.top_k == 5 and none.secrets_file is None


def test_default_secrets_file_is_next_to_the_app_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    assert config.DEFAULT_SECRETS_FILE == Path(kb.__file__).resolve().parent.parent / ".streamlit" / "secrets.toml"
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text("KB_TOP_K = 7\n")
    monkeypatch.chdir(tmp_path)  # a secrets file in the working directory is not the app's
    app_file = tmp_path / "app" / ".streamlit" / "secrets.toml"
    monkeypatch.setattr(config, "DEFAULT_SECRETS_FILE", app_file)
    assert load_settings(env={}).top_k == 5  # the app has none
    app_file.parent.mkdir(parents=True)
    app_file.write_text("KB_TOP_K = 8\n")
    assert load_settings(env={}).top_k == 8
    assert load_settings(env={"KB_SECRETS_FILE": os.devnull}).top_k == 5


def test_tests_never_read_the_developers_secrets_file():
    assert os.environ["KB_SECRETS_FILE"] == os.devnull  # tests/conftest.py
    assert load_settings().secrets_file is None


def test_an_endpoint_without_a_key_enables_llm_answers(tmp_path: Path, fake_openai):
    settings = load_settings(env={"OPENAI_BASE_URL": fake_openai.base_url, "KB_LLM_MODEL": "fake-model"},
                             secrets_file=tmp_path / "absent.toml")
    assert settings.llm_enabled and settings.openai_key == "not-needed"
    fake_openai.reply = "OK"
    assert build_llm(settings, max_retries=0).invoke("Reply with the word OK.").content == "OK"
    assert not load_settings(env={}, secrets_file=tmp_path / "absent.toml").llm_enabled


def test_readme_configuration_table_is_the_declarations():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert settings_table() in readme
    assert len(settings_table().splitlines()) == len(Settings.model_fields) + 2


def test_the_llm_stack_loads_only_when_a_model_is_configured():
    """Offline, `kb` commands and the app start without LangChain and openai (1.7 s of imports)."""
    import subprocess
    import sys

    code = "import sys, kb.service, kb.cli; print(sorted(m for m in ('langchain_core', 'openai') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
