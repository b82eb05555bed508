"""Workers AI locally: mocks from the testing API, an OpenAI-compatible local_url, and the
error that says Workers AI runs remotely and how to answer it here."""

from __future__ import annotations

import json
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from edgelet.config import ConfigError, load_config
from edgelet.testing import Platform

WORKER = """
from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        try:
            if request.url.endswith("/gpt"):
                answer = await self.env.AI.run("@cf/openai/gpt-oss-120b", {
                    "instructions": "You are concise.", "input": "Say hi"})
                return Response.json(answer.output)
            answer = await self.env.AI.run("@cf/meta/llama-3.1-8b-instruct",
                                           {"messages": [{"role": "user", "content": "Say hi"}]})
            return Response(answer.response)
        except Exception as exc:
            return Response(f"{type(exc).__name__}: {exc}", status=500)
"""


def app(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "w.py").write_text(WORKER)
    config = tmp_path / "wrangler.toml"
    config.write_text(textwrap.dedent(f"""
        name = "chat"
        main = "w.py"
        ai = {{ binding = "AI"{extra} }}
    """))
    return config


async def test_a_mock_set_from_the_test_answers_env_ai_run(tmp_path):
    async with Platform(app(tmp_path)) as p:
        p.ai("AI").mock("@cf/meta/llama-3.1-8b-instruct", {"response": "hello from the mock"})
        resp = await p.fetch("/")
        assert resp.status == 200 and await resp.text() == "hello from the mock"
        assert (await p.ai("AI").run("@cf/meta/llama-3.1-8b-instruct", {"prompt": "x"}))["response"] == \
            "hello from the mock"


async def test_without_a_mock_or_local_url_the_error_says_it_runs_remotely_and_the_fix(tmp_path):
    async with Platform(app(tmp_path)) as p:
        resp = await p.fetch("/")
        text = await resp.text()
        assert resp.status == 500 and text.startswith("RuntimeError: Workers AI runs remotely")
        assert "local_url" in text and 'p.ai("AI").mock(' in text and "@cf/meta/llama-3.1-8b-instruct" in text


class _Chat(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        _Chat.seen.append({"path": self.path, **body})
        if body["model"] == "missing":
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b'{"error": "model not found"}')
            return
        last = body["messages"][-1]["content"]
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": f"echo: {last}"}}],
                              "usage": {"total_tokens": 3}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def chat_server():
    server = HTTPServer(("127.0.0.1", 0), _Chat)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Chat.seen.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_a_local_openai_compatible_server_answers_through_edgelet_dev(dev, tmp_path, chat_server):
    s = dev({"wrangler.toml": f'name = "chat"\nmain = "w.py"\nai = {{ binding = "AI", local_url = "{chat_server}" }}\n',
             "w.py": WORKER})
    resp = s.get("/")
    assert resp.status_code == 200 and resp.text == "echo: Say hi"
    assert _Chat.seen[-1]["path"] == "/v1/chat/completions"
    assert _Chat.seen[-1]["model"] == "@cf/meta/llama-3.1-8b-instruct"
    gpt = s.get("/gpt").json()
    assert gpt[0]["content"][0]["text"] == "echo: Say hi"
    assert _Chat.seen[-1]["messages"][0] == {"role": "system", "content": "You are concise."}


async def test_local_model_renames_and_a_server_error_names_the_server_and_model(tmp_path, chat_server):
    async with Platform(app(tmp_path, f', local_url = "{chat_server}", local_model = "missing"')) as p:
        resp = await p.fetch("/")
        text = await resp.text()
        assert resp.status == 500 and "answered 404 for model 'missing'" in text and chat_server in text


def test_a_bad_local_url_stops_config_loading_naming_the_key(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config([app(tmp_path, ', local_url = "localhost:11434"')])
    assert "ai.local_url" in str(info.value) and "http" in str(info.value)
