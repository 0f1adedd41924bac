"""All configuration in one place: `KB_*` environment variables, then the secrets file, then defaults.

Each setting is declared once, below, with its variable, type, default, bounds and help; validation,
the one-line errors and the README's configuration table (`settings_table`) all come from that
declaration. The defaults work offline with nothing configured: an embedded Qdrant engine under the
data directory, BM25 keyword search and the extractive answerer. Secrets are `SecretStr`, so they never
reach a repr or a log line.

The secrets file is found in one documented place, never relative to the working directory:
`KB_SECRETS_FILE` when set (it must exist; `/dev/null` means none), else `.streamlit/secrets.toml` in the
project root (the folder holding the `kb` package, where `make run` starts the app).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic.json_schema import JsonDict
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from kb.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SECRETS_FILE = PROJECT_ROOT / ".streamlit" / "secrets.toml"
NO_SECRETS = Path(os.devnull)
KEYLESS = "not-needed"  # the OpenAI client needs some key; keyless endpoints (Ollama, vLLM) ignore it


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "kb"


def setting(
    default: Any = None,
    *,
    env: str,
    help: str,
    shown: str | None = None,
    factory: Any = None,
    ge: float | None = None,
    le: float | None = None,
    gt: float | None = None,
) -> Any:
    """One setting's declaration: its variable `env`, default, bounds and `help` (the README's text).

    `shown` is the default as the README shows it, when the value itself would not say it well.
    """
    extra: JsonDict = {"env": env, "shown": shown}
    if factory is not None:
        return Field(default_factory=factory, validation_alias=env, description=help, json_schema_extra=extra)
    return Field(default, validation_alias=env, description=help, ge=ge, le=le, gt=gt, json_schema_extra=extra)


class Settings(BaseSettings):
    """Every setting; `Settings(...)` is the defaults plus what is given, `load_settings()` adds the
    environment and the secrets file. Immutable: `replace(**changes)` makes a validated copy."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    data_dir: Path = setting(
        env="KB_DATA_DIR", factory=default_data_dir, shown="`~/.local/share/kb`",
        help="originals, catalog (`catalog.sqlite3`) and the embedded index",
    )
    qdrant_url: str = setting(
        "", env="KB_QDRANT_URL", shown="*(empty: embedded engine)*",
        help="a Qdrant server or cluster, e.g. `http://localhost:6333`",
    )
    qdrant_api_key: SecretStr = setting(SecretStr(""), env="KB_QDRANT_API_KEY", help="its API key")
    collection: str = setting(
        "kb", env="KB_COLLECTION", help="the collection alias on the server (collections `kb-1`, `kb-2`, … behind it)"
    )
    embedding: str = setting(
        "", env="KB_EMBEDDING", shown="*(empty: keyword search only)*",
        help="`fastembed:BAAI/bge-small-en-v1.5` or `openai:text-embedding-3-small` for hybrid search",
    )
    embedding_path: str = setting(
        "", env="KB_EMBEDDING_PATH", help="a local folder holding a fastembed ONNX model (air-gapped machines)"
    )
    dense_weight: float = setting(
        0.4, env="KB_DENSE_WEIGHT", ge=0, le=1,
        help="the dense model's share of a hybrid ranking (0-1); `0` turns a weak model off. "
        "`kb eval --mode hybrid` measures the best one",
    )
    openai_api_key: SecretStr = setting(
        SecretStr(""), env="OPENAI_API_KEY", shown="*(empty: extractive answers)*",
        help="turns on LLM answers (with OpenAI, or any endpoint that wants a key)",
    )
    openai_base_url: str = setting(
        "", env="OPENAI_BASE_URL", shown="OpenAI",
        help="any OpenAI-compatible endpoint (vLLM, Ollama, …); alone, without a key, it also turns on LLM answers",
    )
    llm_model: str = setting("gpt-4o-mini", env="KB_LLM_MODEL", help="the chat model")
    max_file_mb: float = setting(100.0, env="KB_MAX_FILE_MB", gt=0, help="files above this are refused")
    chunk_words: int = setting(
        300, env="KB_CHUNK_WORDS", ge=10, le=5000,
        help="target words per passage (chunks run from about 200 to 400); after a change, new uploads use it "
        "and `kb stats` / Admin warn until a re-index applies it to all",
    )
    top_k: int = setting(5, env="KB_TOP_K", ge=1, le=100, help="passages given to the answerer")
    optimize_after: int = setting(
        10_000, env="KB_OPTIMIZE_AFTER", ge=1,
        help="chunks added to the embedded index before it is optimized again "
        "(in a child process, on a copy, while chat serves)",
    )
    min_relevance: float = setting(
        0.5, env="KB_MIN_RELEVANCE", ge=0, le=1,
        help="share of the question's terms the best passage must hold, else \"the documents do not say\"",
    )
    audit_days: int = setting(
        0, env="KB_AUDIT_DAYS", ge=0,
        help="days the audit log keeps each answer shown (0: keep them all); the worker deletes older ones",
    )
    sync_paths: str = setting(
        "", env="KB_SYNC_PATHS",
        help="folders the worker keeps in sync (`kb sync` on a schedule), `;`-separated; `path=hr,finance` "
        "gives that folder's documents those groups",
    )
    sync_interval_s: float = setting(
        3600.0, env="KB_SYNC_INTERVAL_S", ge=60, le=7 * 86400, help="seconds between two syncs of KB_SYNC_PATHS"
    )
    sync_delete: bool = setting(
        False, env="KB_SYNC_DELETE", shown="`false`",
        help="the scheduled sync also deletes the documents it added whose file is gone (`kb sync --delete`)",
    )
    timeout_s: float = setting(30.0, env="KB_TIMEOUT", gt=0, help="seconds for every network call")
    parse_timeout_s: float = setting(120.0, env="KB_PARSE_TIMEOUT", gt=0, help="seconds one file may take to parse")
    parse_memory_mb: int = setting(
        2048, env="KB_PARSE_MEMORY_MB", ge=256, help="memory cap of the process that parses files"
    )
    admin_password: SecretStr = setting(
        SecretStr(""), env="KB_ADMIN_PASSWORD", help="the admin password (`[admin] password` in secrets.toml)"
    )
    user_groups: str = setting(
        "", env="KB_USER_GROUPS",
        help="groups per user, `alice@example.com=hr,finance;anonymous=` (`[groups]` table in secrets.toml)",
    )
    admin_emails: str = setting(
        "", env="KB_ADMIN_EMAILS",
        help="comma-separated admins by OIDC login (`[admin] emails = [...]` in secrets.toml)",
    )
    secrets_file: Path | None = setting(
        None, env="KB_SECRETS_FILE", shown="`.streamlit/secrets.toml` next to the app",
        help="the secrets file read (it must exist; `/dev/null`: none). The default is in the project root, "
        "not the working directory",
    )

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(describe(exc)) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the values given: `load_settings` decides which environment and file those come from."""
        return (init_settings,)

    @field_validator("data_dir")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    def replace(self, **changes: Any) -> Settings:
        """A copy with `changes` (field names), validated like the original."""
        return type(self)(**{**{name: getattr(self, name) for name in type(self).model_fields}, **changes})

    @property
    def llm_enabled(self) -> bool:
        """A key, or an endpoint alone: keyless OpenAI-compatible servers (Ollama, vLLM) answer too."""
        return bool(self.openai_api_key.get_secret_value() or self.openai_base_url)

    @property
    def openai_key(self) -> str:
        """The key to hand the OpenAI client: the configured one, or a placeholder for keyless endpoints."""
        return self.openai_api_key.get_secret_value() or KEYLESS

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
    def sync_folders(self) -> list[tuple[Path, tuple[str, ...]]]:
        """KB_SYNC_PATHS as (folder, groups of its new documents): `/srv/handbook;/srv/hr=hr,finance`."""
        folders = []
        for entry in self.sync_paths.split(";"):
            path, _, names = entry.strip().rpartition("=")
            if not path or "/" in names:  # no "=", or one that belongs to the path itself
                path, names = entry.strip(), ""
            if path:
                folders.append((Path(path).expanduser(), tuple(g.strip() for g in names.split(",") if g.strip())))
        return folders

    @property
    def admin_email_set(self) -> frozenset[str]:
        return frozenset(e.strip().lower() for e in self.admin_emails.split(",") if e.strip())


def env_name(field: FieldInfo) -> str:
    return str(field.validation_alias)


ENV_TO_FIELD: dict[str, str] = {env_name(f): name for name, f in Settings.model_fields.items()}

_REASONS = {
    "greater_than_equal": "must be >= {ge}",
    "less_than_equal": "must be <= {le}",
    "greater_than": "must be > {gt}",
    "less_than": "must be < {lt}",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "bool_parsing": "must be true or false",
    "extra_forbidden": "is not a setting",
}


def describe(exc: ValidationError) -> str:
    """One line naming each bad variable and what it must be; secret values are never shown."""
    parts = []
    for error in exc.errors():
        key = str(error["loc"][0]) if error["loc"] else "?"
        field = Settings.model_fields.get(ENV_TO_FIELD.get(key, key))
        name = env_name(field) if field else key
        bounds = {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in error.get("ctx", {}).items()}
        reason = _REASONS[error["type"]].format(**bounds) if error["type"] in _REASONS else error["msg"]
        secret = field is not None and field.annotation is SecretStr
        shown = name if secret or error["type"] == "extra_forbidden" else f"{name}={_one_line(error.get('input'))}"
        parts.append(f"{shown}: {reason}")
    return "; ".join(parts)


def _one_line(value: Any) -> str:
    """A value as typed, quoted only when it would be unclear or break the line (spaces, newlines)."""
    text = str(value)
    return text if text.isprintable() and text.strip() == text and text else repr(text)


class VariablesSource(PydanticBaseSettingsSource):
    """Settings from a mapping of variable names (the environment, a flattened secrets file), by field name.

    Empty values count as unset; every value is read as text, as an environment variable would be.
    """

    def __init__(self, settings_cls: type[BaseSettings], variables: Mapping[str, Any]):
        super().__init__(settings_cls)
        self.variables = variables

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        value = self.variables.get(env_name(field))
        return (None if value is None or str(value) == "" else str(value)), field_name, False

    def __call__(self) -> dict[str, Any]:
        found = {}
        for name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, name)
            if value is not None:
                found[key] = value
        return found


def read_secrets(path: Path) -> dict[str, Any]:
    """The secrets file as variables: top-level keys, plus the `[admin]` and `[groups]` tables."""
    if path == NO_SECRETS or not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    flat = {k: v for k, v in data.items() if not isinstance(v, dict) and k != "KB_SECRETS_FILE"}
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


def secrets_path(env: Mapping[str, str], given: Path | None = None) -> Path | None:
    """The secrets file to read, or None: `given`, else KB_SECRETS_FILE (must exist), else the default."""
    if given is not None:
        return given if given.is_file() else None
    named = env.get("KB_SECRETS_FILE", "")
    if named:
        path = Path(named).expanduser()
        if path == NO_SECRETS:
            return None
        if not path.is_file():
            raise ConfigError(f"KB_SECRETS_FILE={named}: no such file")
        return path
    return DEFAULT_SECRETS_FILE if DEFAULT_SECRETS_FILE.is_file() else None


def load_settings(
    env: Mapping[str, str] | None = None, secrets_file: Path | None = None, **overrides: Any
) -> Settings:
    """Settings from the secrets file, the environment and explicit overrides (later wins), validated.

    `secrets_file` given explicitly may be missing (no secrets); overrides of None are ignored.
    """
    env = os.environ if env is None else env
    path = secrets_path(env, secrets_file)
    values: dict[str, Any] = {}
    for variables in (read_secrets(path) if path else {}, env):
        values.update(VariablesSource(Settings, variables)())
    values["secrets_file"] = path
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)


def settings_table() -> str:
    """The README's configuration table, rendered from the declarations above."""
    rows = ["| variable | default | what it does |", "|---|---|---|"]
    for field in Settings.model_fields.values():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        cells = (f"`{env_name(field)}`", str(extra.get("shown") or _shown(field.default)), str(field.description))
        rows.append("|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|")
    return "\n".join(rows) + "\n"


def _shown(default: Any) -> str:
    if isinstance(default, SecretStr):
        default = default.get_secret_value()
    if default in ("", None):
        return ""
    if isinstance(default, float) and default.is_integer():
        default = int(default)
    return f"`{default}`"
