"""All configuration in one place: `KB_*` environment variables, then `.streamlit/secrets.toml`, then defaults.

The defaults work offline with nothing configured: an embedded Qdrant engine under the data directory,
BM25 keyword search and the extractive answerer. Secrets are kept out of `repr()` so they never reach logs.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from kb.errors import ConfigError

SECRETS_FILE = Path(".streamlit") / "secrets.toml"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "kb"


@dataclass(frozen=True)
class Settings:
    """Every setting, with the environment variable that sets it (see README's configuration table)."""

    data_dir: Path = field(default_factory=default_data_dir)  # KB_DATA_DIR
    qdrant_url: str = ""  # KB_QDRANT_URL: empty = embedded engine in data_dir
    qdrant_api_key: str = field(default="", repr=False)  # KB_QDRANT_API_KEY
    collection: str = "kb"  # KB_COLLECTION: the alias name on a Qdrant server
    embedding: str = ""  # KB_EMBEDDING: "" (keyword only), "fastembed:MODEL" or "openai:MODEL"
    embedding_path: str = ""  # KB_EMBEDDING_PATH: local folder holding a fastembed ONNX model
    dense_weight: float = 0.4  # KB_DENSE_WEIGHT: the dense model's share (0-1) in hybrid ranking; 0 turns it off
    openai_api_key: str = field(default="", repr=False)  # OPENAI_API_KEY
    openai_base_url: str = ""  # OPENAI_BASE_URL: any OpenAI-compatible endpoint (vLLM, Ollama)
    llm_model: str = "gpt-4o-mini"  # KB_LLM_MODEL
    max_file_mb: float = 100.0  # KB_MAX_FILE_MB
    parse_timeout_s: float = 120.0  # KB_PARSE_TIMEOUT: seconds one file may take to parse
    parse_memory_mb: int = 2048  # KB_PARSE_MEMORY_MB: address-space cap of the process parsing one file
    chunk_words: int = 300  # KB_CHUNK_WORDS: target words per chunk (200-400 by default)
    top_k: int = 5  # KB_TOP_K: passages given to the answerer
    optimize_after: int = 10_000  # KB_OPTIMIZE_AFTER: chunks written before the embedded index is optimized again
    min_relevance: float = 0.5  # KB_MIN_RELEVANCE: share of the question's terms a passage must hold
    timeout_s: float = 30.0  # KB_TIMEOUT: seconds for every network call
    admin_password: str = field(default="", repr=False)  # KB_ADMIN_PASSWORD or [admin] password
    admin_emails: str = ""  # KB_ADMIN_EMAILS (comma-separated) or [admin] emails: admins by OIDC login
    user_groups: str = ""  # KB_USER_GROUPS "alice@x.com=hr,finance;anonymous=" or a [groups] table

    @property
    def llm_enabled(self) -> bool:
        return bool(self.openai_api_key)

    @property
    def group_map(self) -> dict[str, tuple[str, ...]]:
        """Configured groups per user (e-mail or name, lower case), for logins that do not carry groups."""
        groups: dict[str, tuple[str, ...]] = {}
        for entry in self.user_groups.split(";"):
            user, _, names = entry.partition("=")
            if user.strip():
                groups[user.strip().lower()] = tuple(g.strip() for g in names.split(",") if g.strip())
        return groups

    @property
    def admin_email_set(self) -> frozenset[str]:
        return frozenset(e.strip().lower() for e in self.admin_emails.split(",") if e.strip())


# Environment variable -> Settings field. Everything prefixed KB_ except the names OpenAI's tools use.
ENV_NAMES: dict[str, str] = {
    "KB_DATA_DIR": "data_dir",
    "KB_QDRANT_URL": "qdrant_url",
    "KB_QDRANT_API_KEY": "qdrant_api_key",
    "KB_COLLECTION": "collection",
    "KB_EMBEDDING": "embedding",
    "KB_EMBEDDING_PATH": "embedding_path",
    "KB_DENSE_WEIGHT": "dense_weight",
    "OPENAI_API_KEY": "openai_api_key",
    "OPENAI_BASE_URL": "openai_base_url",
    "KB_LLM_MODEL": "llm_model",
    "KB_MAX_FILE_MB": "max_file_mb",
    "KB_PARSE_TIMEOUT": "parse_timeout_s",
    "KB_PARSE_MEMORY_MB": "parse_memory_mb",
    "KB_CHUNK_WORDS": "chunk_words",
    "KB_TOP_K": "top_k",
    "KB_OPTIMIZE_AFTER": "optimize_after",
    "KB_MIN_RELEVANCE": "min_relevance",
    "KB_TIMEOUT": "timeout_s",
    "KB_ADMIN_PASSWORD": "admin_password",
    "KB_ADMIN_EMAILS": "admin_emails",
    "KB_USER_GROUPS": "user_groups",
}


def _read_secrets(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    flat = {k: v for k, v in data.items() if not isinstance(v, dict)}
    admin = data.get("admin")
    if isinstance(admin, dict) and "password" in admin:
        flat.setdefault("KB_ADMIN_PASSWORD", admin["password"])
    if isinstance(admin, dict) and "emails" in admin:
        emails = admin["emails"]
        flat.setdefault("KB_ADMIN_EMAILS", ",".join(emails) if isinstance(emails, list) else emails)
    groups = data.get("groups")
    if isinstance(groups, dict):
        flat.setdefault(
            "KB_USER_GROUPS",
            ";".join(f"{user}={','.join(names) if isinstance(names, list) else names}" for user, names in groups.items()),
        )
    return flat


def load_settings(
    env: Mapping[str, str] | None = None, secrets_file: Path | None = None, **overrides: Any
) -> Settings:
    """Build Settings from the environment, the secrets file and explicit overrides (highest wins last)."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    for source in (_read_secrets(secrets_file or SECRETS_FILE), env):
        for name, field_name in ENV_NAMES.items():
            if name in source and str(source[name]) != "":
                raw[field_name] = source[name]
    raw.update({k: v for k, v in overrides.items() if v is not None})
    types = {f.name: f.type for f in fields(Settings)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        kind = types[key]
        try:
            if kind == "Path":
                values[key] = Path(value).expanduser()
            elif kind == "int":
                values[key] = int(value)
            elif kind == "float":
                values[key] = float(value)
            else:
                values[key] = str(value)
        except ValueError as exc:
            env_name = next(n for n, f in ENV_NAMES.items() if f == key)
            raise ConfigError(f"{env_name}={value!r} is not a valid {kind}") from exc
    return Settings(**values)
