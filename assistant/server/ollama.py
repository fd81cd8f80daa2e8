"""The Ollama API on the server's own port, for the apps people already use (Open WebUI,
the ``ollama`` library, Continue, Enchanted): ``/api/version``, ``/api/tags``,
``/api/ps``, ``/api/show``, ``/api/chat``, ``/api/generate``, ``/api/embed`` and
``/api/embeddings``. Shapes are Ollama's; ``strategy`` (request) and ``plan``, ``sources``
(answer) are our extensions. With an API key set, every route needs it, as ``/v1`` does."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.routing import APIRoute
from fastapi.responses import Response

from assistant import __version__
from assistant.models.catalog import resolve_model
from assistant.models.generation import SamplingParams
from assistant.server import ollama_embed, ollama_generate
from assistant.server.ollama_models import ModelNames, list_tags, running_models, show_record
from assistant.server.ollama_responses import (OllamaEmbed, OllamaEmbedding, OllamaGenerated, OllamaRunning,
                                               OllamaShow, OllamaTags, OllamaVersion, ollama_documented)
from assistant.server.ollama_schemas import (OllamaChatRequest, OllamaEmbeddingsRequest, OllamaEmbedRequest,
                                             OllamaGenerateRequest, OllamaShowRequest)
from assistant.server.routes import require_api_key, server_state

# The Ollama API level implemented here (structured outputs came with Ollama 0.5.0).
# Clients compare it with Ollama's releases, so our own version would read as an old Ollama.
OLLAMA_API_VERSION = "0.5.0"


class AnyContentTypeRoute(APIRoute):
    """Reads a body as JSON whatever its Content-Type, as Ollama does: its own examples
    use ``curl -d``, which labels the JSON as form data."""

    def get_route_handler(self):
        """The route's handler, given the request labelled as JSON."""
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            headers = [(name, value) for name, value in request.scope["headers"] if name != b"content-type"]
            headers.append((b"content-type", b"application/json"))
            return await handler(Request({**request.scope, "headers": headers}, request.receive))

        return handle


router = APIRouter(prefix="/api", dependencies=[Depends(require_api_key)], tags=["ollama"],
                   route_class=AnyContentTypeRoute)


@router.get("/version", responses=ollama_documented(OllamaVersion))
def version() -> dict:
    """The Ollama API version implemented, and ours as ``assistant_version``."""
    return {"version": OLLAMA_API_VERSION, "assistant_version": __version__}


@router.get("/tags", responses=ollama_documented(OllamaTags))
def tags(request: Request) -> dict:
    """The catalog as ``name:latest`` models."""
    pool = server_state(request).require_assistant().pool
    return {"models": list_tags(ModelNames(server_state(request).settings, pool), pool)}


@router.get("/ps", responses=ollama_documented(OllamaRunning))
def running(request: Request) -> dict:
    """The models in memory now."""
    pool = server_state(request).require_assistant().pool
    return {"models": running_models(ModelNames(server_state(request).settings, pool), pool)}


@router.post("/show", responses=ollama_documented(OllamaShow))
def show(body: OllamaShowRequest, request: Request) -> dict:
    """A model's header facts (``model_info``), template and sampling defaults."""
    state = server_state(request)
    names = ModelNames(state.settings, state.require_assistant().pool)
    catalog_name = names.catalog(body.model)
    info = resolve_model(catalog_name, state.settings).info
    defaults = SamplingParams()
    sampling_defaults = {"temperature": defaults.temperature, "top_p": defaults.top_p, "top_k": defaults.top_k,
                         "repeat_penalty": defaults.repeat_penalty}
    return show_record(names, catalog_name, info, sampling_defaults)


@router.post("/chat", responses=ollama_documented(OllamaGenerated, stream=True))
async def chat(body: OllamaChatRequest, request: Request) -> Response:
    """A chat answer, streamed as NDJSON unless ``stream: false``."""
    return await ollama_generate.reply(body, ollama_generate.chat_messages(body), ollama_generate.chat_content,
                                       request, server_state(request))


@router.post("/generate", responses=ollama_documented(OllamaGenerated, stream=True))
async def generate(body: OllamaGenerateRequest, request: Request) -> Response:
    """A completion of ``prompt`` (through the chat template), streamed unless ``stream: false``."""
    return await ollama_generate.reply(body, ollama_generate.generate_messages(body),
                                       ollama_generate.generate_content, request, server_state(request))


@router.post("/embed", responses=ollama_documented(OllamaEmbed))
async def embed(body: OllamaEmbedRequest, request: Request) -> dict:
    """Embeddings of ``input`` with the notes' encoder."""
    return await ollama_embed.embed(server_state(request), body.model, body.texts(), body.dimensions)


@router.post("/embeddings", responses=ollama_documented(OllamaEmbedding))
async def embeddings(body: OllamaEmbeddingsRequest, request: Request) -> dict:
    """The older single-prompt embeddings endpoint."""
    return await ollama_embed.embeddings(server_state(request), body.model, body.prompt)
