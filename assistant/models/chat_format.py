"""Turning chat messages into a prompt: the model's own Jinja template from its GGUF
header, or a plain fallback for base models that have none (Gemma 3 270M base)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Protocol

from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from assistant.errors import InvalidRequestError


@dataclass(frozen=True)
class ChatMessage:
    """One turn of a conversation."""

    role: str  # system | user | assistant
    content: str


class ChatFormat(Protocol):
    """Renders messages to a prompt string and names the stop strings it implies."""

    name: str
    stop: list[str]

    def render(self, messages: list[ChatMessage]) -> str: ...


@dataclass
class TemplateChatFormat:
    """The chat template carried in the GGUF (``tokenizer.chat_template``), rendered in a
    sandbox as llama.cpp and transformers do."""

    template: str
    bos_token: str = ""
    eos_token: str = ""
    name: str = "gguf-template"
    stop: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise_template_error
        self._compiled = env.from_string(self.template)

    def render(self, messages: list[ChatMessage]) -> str:
        """The prompt, ending where the assistant's reply begins."""
        try:
            return self._compiled.render(
                messages=[{"role": m.role, "content": m.content} for m in messages],
                add_generation_prompt=True, bos_token=self.bos_token, eos_token=self.eos_token)
        except TemplateError as exc:
            raise InvalidRequestError(f"the model's chat template rejected these messages: {exc}",
                                      param="messages") from exc


def _raise_template_error(message: str) -> None:
    raise TemplateError(message)


@dataclass
class PlainChatFormat:
    """For base models without a template: a transcript that a completion model continues.
    Stops when it starts writing the user's next turn."""

    name: str = "plain"
    stop: list[str] = field(default_factory=lambda: ["\nUser:", "\n\nUser:"])

    def render(self, messages: list[ChatMessage]) -> str:
        """``System`` text first, then ``User:``/``Assistant:`` turns, then ``Assistant:``."""
        lines = []
        for message in messages:
            if message.role == "system":
                lines.append(message.content.strip() + "\n")
            else:
                speaker = "User" if message.role == "user" else "Assistant"
                lines.append(f"{speaker}: {message.content.strip()}")
        lines.append("Assistant:")
        return "\n".join(lines)


def chat_format_for(template: Optional[str], bos_token: str, eos_token: str) -> ChatFormat:
    """The model's template when it has one, else the plain transcript."""
    if template:
        return TemplateChatFormat(template, bos_token=bos_token, eos_token=eos_token)
    return PlainChatFormat()
