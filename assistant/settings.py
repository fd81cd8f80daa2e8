"""One settings object for the whole runtime.

Values come, in order of precedence, from CLI flags, environment variables
(``ASSISTANT_<FIELD>``) and the defaults below. Everything the assistant writes lives
under ``home``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal, Optional

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from assistant.layout import HomeLayout


def default_home() -> Path:
    """The XDG data dir for the assistant: ``$XDG_DATA_HOME/assistant`` or ``~/.local/share/assistant``."""
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "assistant"


class Settings(BaseSettings):
    """Runtime settings; every field is also an ``ASSISTANT_<NAME>`` env var."""

    model_config = SettingsConfigDict(env_prefix="ASSISTANT_", extra="ignore", protected_namespaces=())

    home: Path = Field(default_factory=default_home, description="Data directory; nothing is written elsewhere.")
    host: str = Field("127.0.0.1", description="Address to listen on (loopback by default: private).")
    port: int = Field(8765, ge=0, le=65535, description="Port to listen on (0 picks a free one).")
    ollama_port: Optional[int] = Field(None, ge=1, le=65535, description="Also listen on this port, e.g. 11434 where Ollama clients look by default (same app, same API).")
    model: str = Field("default", description="Catalog model name or a path to a .gguf file.")
    backend: Literal["cpu", "cim"] = Field("cpu", description="'cim' also loads the model's stored simulated NVCIM chip (torch; run 'assistant cim program' first) so requests may ask for backend 'cim'.")
    profile: str = Field("auto", description="Device profile name from profiles/, or 'auto' to detect.")
    api_key: Optional[str] = Field(None, description="If set, requests need 'Authorization: Bearer <key>'.")
    n_ctx: Optional[int] = Field(None, ge=64, description="Context length; default: the profile's max context.")
    initial_context: Optional[int] = Field(None, ge=0, description="Context allocated when a model loads, grown on demand up to the context length (the KV cache is most of the server's memory); default: room for a RAG answer at the profile's passage budget; 0 allocates the whole context at load.")
    kv_cache_type: Optional[str] = Field(None, description="KV cache type: f16 or q8_0 (half the memory); default: the profile's.")
    n_batch: Optional[int] = Field(None, ge=1, description="Prompt tokens evaluated per batch; default: the profile's.")
    n_threads: Optional[int] = Field(None, ge=1, description="Inference threads; default: the profile's threads.")
    queue_size: Optional[int] = Field(None, ge=1, description="Requests that may wait for the model; beyond this: 503. Default: the profile's.")
    max_wait: Optional[float] = Field(None, gt=0, description="Seconds a request may wait in the queue before a 503; default: no limit.")
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list, description="Extra Host names served when bound to loopback (comma-separated); others get 403.")
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list, description="Extra browser origins allowed by CORS (comma-separated); default: the server's own page only.")
    insecure_no_auth: bool = Field(False, description="Allow listening beyond loopback without an API key (anyone on the network can read the notes).")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Largest accepted request body in bytes (413 beyond).")
    hub_url: str = Field("https://huggingface.co", description="Base URL for `assistant models pull` (only used there).")
    profiles_dir: Optional[Path] = Field(None, description="Folder of device profile TOML files; default: the bundled ones.")
    system_root: Path = Field(Path("/"), description="Root for device detection files (/proc, /etc); tests point it at fixtures.")
    follow_symlinks: bool = Field(False, description="Let `personalize` follow symlinks that lead out of the folders it was given.")
    encoder_exports: Optional[Path] = Field(None, description="A folder of sentence-encoder exports made by another install of this version (one folder per encoder, as in knowledge/encoders/): a home without its export copies a matching one from there instead of exporting it, which needs torch.")
    knowledge_max_file_bytes: int = Field(10_000_000, ge=1, description="Notes files larger than this are skipped by `personalize`.")

    @property
    def layout(self) -> HomeLayout:
        """The folders and files under ``home``."""
        return HomeLayout(self.home)

    @field_validator("allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value):
        # flags and env vars give one string; the file and code give a list
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def models_dir(self) -> Path:
        """Where assembled and pulled GGUF files live (``layout.models``; kept for callers
        that predate the layout)."""
        return self.layout.models

    def ensure_home(self) -> Path:
        """Create the data dir if needed and return it."""
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.home.stat().st_uid == os.getuid():
            self.home.chmod(0o700)  # private, also when an older version made it 0755
        return self.home
