"""The OpenAI-compatible server and the chat page.

    from qwq.serve.app import create_app
    from qwq.serve.service import ServeContext
    app = create_app(ServeContext.from_engine(engine, "my-model"), api_key=None)   # a FastAPI app

Modules: protocol (request/response models = the OpenAPI schema), prepare (request -> prompt ids, sampling
parameters, controls), stream (the per-choice router: reasoning / content / tool-call deltas), chat and completions
(the two generation routes), service (shared state, SSE), metrics (Prometheus), errors (OpenAI error shape),
app (routes, API key, size limit), cli (`qwq serve`), static/ (the chat page).
"""
