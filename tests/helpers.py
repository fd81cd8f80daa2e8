"""Test helpers shared by the suites: free ports, a real server process, fake GGUF files."""
from __future__ import annotations

import os
from contextlib import contextmanager
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import httpx
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_gguf(path: Path, arch: str = "llama", blocks: int = 2, embd: int = 64, heads: int = 4,
               context: int = 2048, sparse_size_bytes: Optional[int] = None) -> Path:
    """A small but valid GGUF (header + one tensor). ``sparse_size_bytes`` extends the file
    with a hole, so the memory guard sees a huge model without using disk."""
    import gguf

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name("fake-test-model")
    writer.add_block_count(blocks)
    writer.add_context_length(context)
    writer.add_embedding_length(embd)
    writer.add_feed_forward_length(4 * embd)
    writer.add_head_count(heads)
    writer.add_head_count_kv(heads)
    writer.add_tensor("token_embd.weight", np.zeros((32, embd), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    if sparse_size_bytes:
        with path.open("r+b") as handle:
            handle.truncate(sparse_size_bytes)
    return path


def index_notes(home: Path, notes_dir: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (name -> text) into ``notes_dir`` and index them into ``home`` with
    the real knowledge pipeline."""
    from assistant.knowledge.indexer import Indexer
    from assistant.settings import Settings

    for name, text in files.items():
        (notes_dir / name).write_text(text)
    Indexer(Settings(home=home), progress=False).run([str(notes_dir)])
    return notes_dir


class ServerProcess:
    """``assistant serve`` in a subprocess on a free port, with its own ASSISTANT_HOME."""

    def __init__(self, home: Path, *extra_args: str, env: Optional[dict] = None):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / f"server-{self.port}.log"
        full_env = {**os.environ, "ASSISTANT_HOME": str(home), **(env or {})}
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "assistant.cli", "serve", "--port", str(self.port), "--log-level", "warning",
             *extra_args], env=full_env, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)

    def wait_ready(self, timeout_s: float = 120.0) -> dict:
        """Poll /health until 200; fail with the server log if it dies or times out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.log_path.read_text()}")
            try:
                response = httpx.get(f"{self.base_url}/health", timeout=2)
                if response.status_code == 200:
                    return response.json()
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"server not ready after {timeout_s}s:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        """Terminate and reap the process."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# Three small notes the server tests index (dentist, bike, garden).
SAMPLE_NOTES = {
    "dentist.md": "# Dentist\n\nMy dentist is Dr. Raman at the Lindenhof clinic.\n",
    "bike.md": "# Bike\n\n## Parking\nThe blue bike is parked in rack 14 in the basement.\n",
    "garden.md": "# Garden\n\nThe tomatoes grow in the south bed and need water every evening.\n",
}


@contextmanager
def indexed_server(tmp_path_factory, name: str, *server_args: str, notes: Optional[dict] = None):
    """A real server over a home where ``notes`` (default SAMPLE_NOTES) are indexed;
    yields (server, notes folder) and stops the server after."""
    home = tmp_path_factory.mktemp(f"{name}-home")
    folder = index_notes(home, tmp_path_factory.mktemp(f"{name}-notes", numbered=False), notes or SAMPLE_NOTES)
    server = ServerProcess(home, *server_args)
    try:
        server.wait_ready()
        yield server, folder
    finally:
        server.stop()
