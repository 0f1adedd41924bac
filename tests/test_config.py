from pathlib import Path

import pytest

from kb.config import ConfigError, load_settings


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
    assert settings.openai_api_key == "sk-file" and settings.llm_enabled
    assert settings.admin_password == "s3cret"


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
