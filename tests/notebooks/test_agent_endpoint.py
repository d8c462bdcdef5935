"""The agent notebook's endpoint path: a LangChain agent against an OpenAI-compatible server from the env.

The server is a small stand-in on 127.0.0.1 that speaks the chat-completions protocol: it asks for the tool
named in the request and then answers with what the tool returned, so the real `ChatOpenAI` client, the
agent loop and the tool all run.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from nbrun import result_of, run_notebook


class ChatCompletions(BaseHTTPRequestHandler):
    """POST /v1/chat/completions: first a tool call, then, once a tool message is present, a final answer."""

    requests: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        auth = self.headers.get("Authorization")
        type(self).requests.append({"path": self.path, "auth": auth, "body": body})
        last = body["messages"][-1]
        if last["role"] == "tool":
            message: dict = {"role": "assistant", "content": f"It is {last['content']}."}
            finish = "stop"
        else:
            tool = body["tools"][0]["function"]["name"]
            args = json.dumps({"expression": "19 * 23"})
            call = {"id": "call_1", "type": "function", "function": {"name": tool, "arguments": args}}
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            finish = "tool_calls"
        reply = {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    ChatCompletions.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), ChatCompletions)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_agent_uses_the_configured_endpoint(
    user_env: dict[str, Path], endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", endpoint)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    monkeypatch.setenv("GPU_JUPYTERHUB_AGENT_MODEL", "tiny-test-model")
    nb = run_notebook("agent_development.ipynb", {}, user_env["tmp"])
    result = result_of(nb, "AGENT_RESULT")
    assert result["backend"] == "openai-compatible"
    assert result["tool_calls"] == [{"name": "calculator", "args": {"expression": "19 * 23"}}]
    assert "437" in result["answer"]  # 19 * 23, computed by the notebook's tool, relayed by the server

    first, second = ChatCompletions.requests
    assert first["path"] == second["path"] == "/v1/chat/completions"
    assert first["auth"] == "Bearer sk-local-test"
    assert first["body"]["model"] == "tiny-test-model"
    assert [t["function"]["name"] for t in first["body"]["tools"]] == ["calculator"]
    assert second["body"]["messages"][-1] == {"role": "tool", "content": "437", "tool_call_id": "call_1"}
