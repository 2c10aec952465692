"""A small OpenAI-compatible chat server for endpoint tests (FastAPI + uvicorn on 127.0.0.1, a free port).
No `from __future__ import annotations` here: FastAPI reads the route annotations at run time.

`answer(messages, body) -> (reasoning | None, content | None, finish_reason)` decides the reply; `faults` maps a
user-message substring to a list of HTTP statuses to return first (popped one per request).
"""


import asyncio
import socket
import threading
import time
from contextlib import contextmanager


@contextmanager
def serve(answer, faults=None, delay_s: float = 0.02, report_reasoning_tokens: bool = True):
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    app = FastAPI()
    state = {"in_flight": 0, "max_in_flight": 0, "requests": [], "faults": dict(faults or {})}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": "fake-qwq", "object": "model"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        state["requests"].append(body)
        user = body["messages"][-1]["content"]
        for needle, statuses in state["faults"].items():
            if needle in user and statuses:
                status = statuses.pop(0)
                return JSONResponse({"error": {"message": f"injected {status}"}}, status_code=status,
                                    headers={"Retry-After": "0"} if status == 429 else {})
        state["in_flight"] += 1
        state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
        try:
            await asyncio.sleep(delay_s)
            reasoning, content, finish = answer(body["messages"], body)
        finally:
            state["in_flight"] -= 1
        r_tokens = len((reasoning or "").split())
        a_tokens = len((content or "").split())
        usage = {"prompt_tokens": len(user.split()), "completion_tokens": r_tokens + a_tokens,
                 "total_tokens": len(user.split()) + r_tokens + a_tokens}
        if report_reasoning_tokens:
            usage["completion_tokens_details"] = {"reasoning_tokens": r_tokens}
        message = {"role": "assistant", "content": content}
        if reasoning is not None:
            message["reasoning_content"] = reasoning
        return {"id": "x", "object": "chat.completion", "created": int(time.time()), "model": body.get("model"),
                "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage}

    with run_app(app) as url:
        yield url, state


@contextmanager
def run_app(app):
    """Serve an ASGI app with uvicorn on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
