"""``assistant models pull``: the one place that may use the network, and only when asked.
Downloads a GGUF file from a model hub into ``$ASSISTANT_HOME/models``, atomically."""
from __future__ import annotations

import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable, Optional

from assistant.errors import InvalidRequestError, OfflineError
from assistant.models.gguf_info import read_gguf_info
from assistant.settings import Settings


def hub_file_url(hub_url: str, repo: str, filename: str, revision: str = "main") -> str:
    """``<hub>/<owner>/<repo>/resolve/<revision>/<file>``, the layout Hugging Face serves."""
    return f"{hub_url.rstrip('/')}/{repo}/resolve/{urllib.parse.quote(revision)}/{urllib.parse.quote(filename)}"


def pull_model(settings: Settings, repo: str, filename: str, name: Optional[str] = None,
               progress: Optional[Callable[[int, Optional[int]], None]] = None, timeout_s: float = 30.0) -> Path:
    """Download ``repo``'s ``filename`` to ``models/<name>.gguf``; verify it is GGUF before
    it replaces anything. OfflineError with one clear line when the hub cannot be reached."""
    if not filename.endswith(".gguf"):
        raise InvalidRequestError(f"'{filename}' is not a .gguf file", param="file")
    target = settings.layout.models / f"{name or Path(filename).stem}.gguf"
    url = hub_file_url(settings.hub_url, repo, filename)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".pull-")
    try:
        with os.fdopen(fd, "wb") as out:
            _download(url, out, progress, timeout_s)
        read_gguf_info(Path(tmp_name))  # refuses an HTML error page or a truncated file
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return target


def _download(url: str, out, progress, timeout_s: float) -> None:
    host = urllib.parse.urlparse(url).netloc
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            total = response.headers.get("Content-Length")
            total_bytes = int(total) if total and total.isdigit() else None
            done = 0
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
                done += len(block)
                if progress:
                    progress(done, total_bytes)
    except urllib.error.HTTPError as exc:
        raise OfflineError(f"{host} answered {exc.code} for {url}", code="pull_failed") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OfflineError(f"cannot reach {host} ({reason}); are you offline? Everything else works offline") from exc
