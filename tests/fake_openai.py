"""A small OpenAI-compatible HTTP server for tests: chat completions (plain and streamed) and embeddings.

It records every request body, so a test can see exactly what a model was sent, replies with a
scripted answer, and can be told to fail with HTTP 500 or to hang until the client gives up.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Literal

Failure = Literal["error", "hang"]


class FakeOpenAI:
    """Serves /v1/chat/completions and /v1/embeddings on 127.0.0.1, on a free port, from a thread."""

    def __init__(
        self, reply: str | Callable[[dict], str] = "Leave is requested in the HR system [1].", embedding_dim: int = 32
    ):
        self.reply = reply  # a callable gets the request body, to answer each prompt differently
        self.token_delay_s = 0.0  # pause before each streamed token, to watch a page while an answer streams
        self.failure: Failure | None = None
        self.embedding_dim = embedding_dim
        self.requests: list[tuple[str, dict]] = []  # (path, JSON body), in arrival order
        self._release = threading.Event()  # lets hanging requests go when the server stops
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def chat_requests(self) -> list[dict]:
        return [body for path, body in self.requests if path.endswith("/chat/completions")]

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def embed(self, text: str) -> list[float]:
        """A deterministic unit vector from hashed words, so texts sharing words lie close together."""
        vector = [0.0] * self.embedding_dim
        for word in re.findall(r"\w+", text.lower()):
            digest = hashlib.sha256(word.encode()).digest()
            vector[int.from_bytes(digest[:4], "little") % self.embedding_dim] += 1.0 if digest[4] % 2 else -1.0
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]


class _Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    @property
    def fake(self) -> FakeOpenAI:
        return self.server.fake  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.fake.requests.append((self.path, body))
        if self.fake.failure == "hang":
            self.fake._release.wait(timeout=60)
            return
        if self.fake.failure == "error":
            # retry-after-ms lets the client's retries go at once, so tests stay fast
            self._send_json({"error": {"message": "scripted failure", "type": "server_error"}}, 500,
                            {"retry-after-ms": "1"})
        elif self.path.endswith("/chat/completions"):
            self._chat(body)
        elif self.path.endswith("/embeddings"):
            self._embeddings(body)
        else:
            self._send_json({"error": {"message": f"no route {self.path}"}}, 404)

    def _chat(self, body: dict) -> None:
        model = body.get("model", "fake-model")
        reply = self.fake.reply(body) if callable(self.fake.reply) else self.fake.reply
        if not body.get("stream"):
            message = {"role": "assistant", "content": reply}
            self._send_json({
                "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            })
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        pieces = [{"role": "assistant", "content": ""}] + [
            {"content": token} for token in re.findall(r"\S+\s*", reply)
        ]
        for delta in pieces:
            time.sleep(self.fake.token_delay_s)
            self._send_event(_chunk(model, [{"index": 0, "delta": delta, "finish_reason": None}]))
        self._send_event(_chunk(model, [{"index": 0, "delta": {}, "finish_reason": "stop"}]))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 1, "completion_tokens": len(pieces), "total_tokens": len(pieces) + 1}
            self._send_event({**_chunk(model, []), "usage": usage})
        self.wfile.write(b"data: [DONE]\n\n")

    def _embeddings(self, body: dict) -> None:
        inputs = body.get("input", [])
        if isinstance(inputs, str) or (inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        vectors = [self.fake.embed(item if isinstance(item, str) else " ".join(map(str, item))) for item in inputs]
        encoded = body.get("encoding_format") == "base64"
        data = [
            {"object": "embedding", "index": i,
             "embedding": base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() if encoded else v}
            for i, v in enumerate(vectors)
        ]
        self._send_json({"object": "list", "data": data, "model": body.get("model", "fake-embedding"),
                         "usage": {"prompt_tokens": 1, "total_tokens": 1}})

    def _send_json(self, payload: dict, status: int = 200, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_event(self, payload: dict) -> None:
        self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
        self.wfile.flush()


def _chunk(model: str, choices: list[dict]) -> dict:
    return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model, "choices": choices}
