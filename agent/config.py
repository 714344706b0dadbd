"""All configuration, in one place: defaults < config file < environment variables < command-line flags.

Every setting has an environment variable VESALIUS_<NAME> and a key <name> in the TOML config file
(VESALIUS_CONFIG, default ~/.config/vesalius/config.toml). The README lists them.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from vesalius.agent.errors import AgentError

_MAX_CONFIG_BYTES = 1024 * 1024


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or Path.home())


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # OpenAI-compatible base URL of a vLLM server, e.g. http://127.0.0.1:8000/v1; several, comma-separated, are
    # tried in order, and the client stays with the one that answered last.
    vlm_url: str | None = None
    vlm_model: str | None = None  # served model name; default: the first model the server lists
    vlm_api_key: str | None = None
    vlm_timeout_s: float = Field(120.0, gt=0, le=3600)
    vlm_max_tokens: int = Field(384, ge=1, le=32768)
    vlm_extra_body: dict[str, Any] = {}  # server-specific request fields, e.g. {"return_token_ids": true} for vLLM
    # A busy server (429, 5xx), a time-out or a refused connection is tried again this many times, after a pause
    # starting at vlm_backoff_s and doubling (or the server's Retry-After, up to 30 s).
    vlm_retries: int = Field(2, ge=0, le=10)
    vlm_backoff_s: float = Field(0.5, ge=0, le=60)
    # "transformers": the model in vlm_model_dir, run in this process on the CPU (slow; no server needed).
    vlm_backend: Literal["server", "transformers"] = "server"
    vlm_model_dir: Path | None = Field(None, validate_default=True)
    # MedGemma's input resolution; larger images are shrunk before sending
    vlm_image_max_side: int = Field(896, ge=32, le=8192)
    vlm_max_images: int = Field(1, ge=1, le=16)  # slices of a volume sent per question (the server must allow them)
    # Who chooses the tools: the model through structured outputs ("model"), the word rules ("rules"), or the
    # model when one is configured ("auto"). The rules stay the fallback whatever is chosen.
    planner: Literal["auto", "rules", "model"] = "auto"
    # A sentence of the model's with no support in the tools, the study or the sources: marked, or left out.
    unsupported_sentences: Literal["flag", "remove"] = "flag"
    require_model: bool = False  # fail instead of answering from the tools when the model server fails
    cache_dir: Path  # knowledge bases (unless kb_dir is set), heatmaps
    data_dir: Path  # conversation threads (threads.sqlite), the de-identification key, uploaded studies
    # Conversations in PostgreSQL instead of data_dir/threads.sqlite: postgresql://user:password@host:port/db
    db_url: str | None = Field(None, pattern=r"^postgres(ql)?://", max_length=2048, repr=False)
    kb_dir: Path | None = None  # knowledge-base root (`vesalius kb build`) or one build; default cache_dir/kb
    knowledge_path: Path | None = None  # an imaging knowledge JSON file replacing the bundled one
    embedding_model: Path | None = None  # a local sentence-transformers directory; default all-MiniLM-L6-v2
    top_k: int = Field(5, ge=1, le=50)
    # How long a question waits for another question on the same conversation to finish before it is refused.
    thread_wait_s: float = Field(300.0, ge=0, le=3600)
    # De-identification (DICOM PS3.15 Basic Profile) of every study before anything is kept or sent.
    deid_key_file: Path | None = None  # secret for UID remapping and date shifts; default data_dir/deid.key
    deid_dates: Literal["remove", "shift"] = "remove"
    deid_keep_patient_characteristics: bool = True  # age (capped at 90) and sex, size and weight
    max_voxels: int = Field(400_000_000, gt=0)  # the largest volume loaded (x4 bytes of memory)
    # Loaded studies kept for follow-up questions, bounded both ways: a long-lived process must not grow with
    # every study it has seen. The study being answered is kept even when it alone is larger.
    study_cache_entries: int = Field(4, ge=1, le=1000)
    study_cache_mb: int = Field(1024, ge=1, le=1_000_000)
    # a concept not named in the question is cited only at this cosine or above
    min_citation_score: float = Field(0.45, ge=0, le=1)
    models_dir: Path | None = None  # trained model bundles (`vesalius train --out`); default: the shipped ones
    tool_plugins: bool = True  # load vision tools from installed plugins (entry point group vesalius.tools)
    # The python of an environment with vLLM, for its in-process engine (`vesalius eval run --model-dir`); default:
    # this Python, when it can import vllm.
    vllm_python: Path | None = None
    # `vesalius serve`: where it listens, who may call it, and how much one caller may send.
    serve_host: str = "127.0.0.1"
    serve_port: int = Field(8000, ge=1, le=65535)
    # Required (the server refuses to start without it) when serve_host is not a loopback address.
    api_token: str | None = Field(None, min_length=16, max_length=512)
    study_dir: Path | None = None  # de-identified uploaded studies; default data_dir/studies (shared by workers)
    max_upload_mb: int = Field(1024, ge=1, le=65536)  # one upload request, all its files together
    max_upload_files: int = Field(2000, ge=1, le=100_000)
    rate_limit_per_minute: int = Field(120, ge=1, le=100_000)  # API requests per token (or per address without one)

    @field_validator("vlm_url")
    @classmethod
    def _http_urls(cls, value: str | None) -> str | None:
        if value is None:
            return None
        urls = [u.strip() for u in value.split(",")]
        for url in urls:
            parsed = urlsplit(url)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise ValueError(
                    f"{url!r} is not an http:// or https:// URL with a host, e.g. http://127.0.0.1:8000/v1"
                    " (several are separated by commas)"
                )
        return ",".join(urls)

    @field_validator("vlm_model_dir")
    @classmethod
    def _model_dir_for_transformers(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None and info.data.get("vlm_backend") == "transformers":
            raise ValueError("vlm_backend 'transformers' needs the folder of a local model here")
        return value

    @field_validator("vlm_extra_body", mode="before")
    @classmethod
    def _json_object(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    @property
    def knowledge_root(self) -> Path:
        return self.kb_dir or self.cache_dir / "kb"

    @property
    def threads_db(self) -> Path:
        return self.data_dir / "threads.sqlite"

    @property
    def studies_path(self) -> Path:
        return self.study_dir or self.data_dir / "studies"

    @property
    def deid_key_path(self) -> Path:
        return self.deid_key_file or self.data_dir / "deid.key"


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    env = os.environ if env is None else env
    home = _home(env)
    values: dict[str, Any] = {
        "cache_dir": Path(env.get("XDG_CACHE_HOME") or home / ".cache") / "vesalius",
        "data_dir": Path(env.get("XDG_DATA_HOME") or home / ".local" / "share") / "vesalius",
    }
    named = env.get("VESALIUS_CONFIG")
    config_path = Path(named or home / ".config" / "vesalius" / "config.toml")
    if named and not config_path.is_file():
        raise AgentError(
            f"VESALIUS_CONFIG names {config_path}, which is not a file",
            "Point VESALIUS_CONFIG at a TOML file, or unset it to use ~/.config/vesalius/config.toml",
        )
    if config_path.is_file():  # a FIFO or a device there is not a config file, and reading it could hang
        try:
            if config_path.stat().st_size > _MAX_CONFIG_BYTES:
                raise AgentError(
                    f"the config file {config_path} is over {_MAX_CONFIG_BYTES // 1024} KB", "Is it the right file?"
                )
            values.update(tomllib.loads(config_path.read_text()))
        except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as exc:
            raise AgentError(
                f"cannot read the config file {config_path} ({exc})", "Fix the TOML or remove the file"
            ) from exc
    for name in Settings.model_fields:
        value = env.get(f"VESALIUS_{name.upper()}")
        if value not in (None, ""):
            values[name] = value
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else "?"
        raise AgentError(
            f"invalid setting {name!r}: {err['msg']}",
            f"Fix VESALIUS_{name.upper()} or '{name}' in {config_path}",
        ) from exc
