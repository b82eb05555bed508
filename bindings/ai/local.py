"""Turn ``env.AI.run(model, inputs)`` into an OpenAI-compatible chat completion and back.

Cloudflare's text models take ``{"messages": [...]}`` or ``{"prompt": "..."}`` and answer
``{"response": "..."}``; the Responses-style models (``@cf/openai/gpt-oss-*``) take
``{"instructions", "input"}`` and answer with an ``output`` list. Both are mapped onto
``POST {local_url}/chat/completions``, which Ollama, llama.cpp, vLLM and LM Studio serve.
"""

from __future__ import annotations

from typing import Any

import httpx


def chat_messages(inputs: Any) -> list[dict[str, Any]]:
    """The chat messages a Workers AI text-generation input stands for."""
    if not isinstance(inputs, dict):
        raise TypeError(f"env.AI.run inputs must be a dict, got {type(inputs).__name__}")
    if isinstance(inputs.get("messages"), list):
        return list(inputs["messages"])
    messages: list[dict[str, Any]] = []
    if inputs.get("instructions"):
        messages.append({"role": "system", "content": str(inputs["instructions"])})
    if isinstance(inputs.get("input"), list):
        messages.extend(inputs["input"])
    elif inputs.get("input") is not None:
        messages.append({"role": "user", "content": str(inputs["input"])})
    elif inputs.get("prompt") is not None:
        messages.append({"role": "user", "content": str(inputs["prompt"])})
    if not messages:
        raise ValueError("env.AI.run inputs have none of messages, prompt or input; a local "
                         "OpenAI-compatible server can only answer text generation")
    return messages


def cloudflare_result(inputs: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    """A Workers AI result built from an OpenAI chat completion."""
    try:
        text = answer["choices"][0]["message"].get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError):
        raise RuntimeError(f"the local AI server answered without choices[0].message: {str(answer)[:200]}") from None
    result: dict[str, Any] = {"response": text}
    if isinstance(answer.get("usage"), dict):
        result["usage"] = answer["usage"]
    if "input" in inputs or "instructions" in inputs:
        result["output"] = [{"type": "message", "role": "assistant",
                             "content": [{"type": "output_text", "text": text}]}]
        result["output_text"] = text
    return result


async def run_local(client: httpx.AsyncClient, url: str, model: str, inputs: Any,
                    options: dict[str, Any] | None) -> dict[str, Any]:
    """Ask the OpenAI-compatible server at ``url``; errors name the server and what to do."""
    body: dict[str, Any] = {"model": model, "messages": chat_messages(inputs), "stream": False}
    for key in ("max_tokens", "temperature", "top_p", "seed"):
        if key in inputs:
            body[key] = inputs[key]
    endpoint = f"{url}/chat/completions"
    try:
        resp = await client.post(endpoint, json=body, timeout=(options or {}).get("timeout", 120))
    except httpx.HTTPError as exc:
        raise RuntimeError(f"the local AI server at {endpoint} did not answer ({type(exc).__name__}: {exc}); "
                           f"start it (e.g. `ollama serve`) or correct ai.local_url") from None
    if resp.status_code >= 400:
        raise RuntimeError(f"the local AI server at {endpoint} answered {resp.status_code} for model "
                           f"{model!r}: {resp.text[:300]}; set ai.local_model to a model it serves")
    try:
        answer = resp.json()
    except ValueError:
        raise RuntimeError(f"the local AI server at {endpoint} answered with non-JSON: {resp.text[:200]}") from None
    return cloudflare_result(inputs, answer)
