"""`qwq serve -m M [--host 127.0.0.1 --port 8000] [--api-key K] [--quant int4]`: the OpenAI-compatible server and the
chat page (open http://HOST:PORT/ in a browser)."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from qwq.utils.errors import UsageError


def add_args(parser: argparse.ArgumentParser) -> None:
    model = parser.add_argument_group("model")
    model.add_argument("-m", "--model", default="tiny",
                       help="HF checkpoint dir, .gguf file, qwq run dir, quantized checkpoint or a name (default: tiny)")
    model.add_argument("--quant", choices=("none", "int8", "int4"), default="none",
                       help="weight-only quantization at load (a GGUF is repacked, not inflated)")
    model.add_argument("--group-size", type=int, default=None, help="int4/int8 group size")
    model.add_argument("--dtype", default="auto", help="auto (fp32 on CPU, bf16 on GPU), float32, bfloat16")
    model.add_argument("--device", default="cpu", help="cpu or cuda")
    model.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    model.add_argument("--max-batch-size", type=int, default=16, help="sequences decoded together (default 16)")
    model.add_argument("--max-model-len", type=int, default=None, help="context limit (default: the model's)")
    model.add_argument("--kv-cache-tokens", type=int, default=None,
                       help="KV cache size in tokens (default: max batch size x min(context, 4096))")
    server = parser.add_argument_group("server")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=8000)
    server.add_argument("--api-key", default=os.environ.get("QWQ_API_KEY"),
                        help="require 'Authorization: Bearer KEY' on /v1 and /metrics (default: $QWQ_API_KEY)")
    server.add_argument("--served-model-name", default=None, help="the model id clients send (default: the "
                                                                  "model's name or directory name)")
    server.add_argument("--max-tokens", type=int, default=32768,
                        help="completion tokens when a request gives no max_tokens (capped by the context)")
    server.add_argument("--max-body-bytes", type=int, default=8 << 20, help="request size limit (413 beyond it)")
    server.add_argument("--guard", default="rules+learned",
                        help="safety guard on input and output: none, rules, learned or rules+learned (default)")
    server.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))


def model_id(spec: str) -> str:
    path = Path(spec).expanduser()
    if path.is_dir():
        return path.resolve().name
    if path.is_file():
        return path.stem
    return spec


def _check_port(host: str, port: int) -> None:
    if not 0 < port < 65536:
        raise UsageError(f"--port must be in 1..65535, got {port}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def check_args(args: argparse.Namespace) -> None:
    """Cheap checks first (before torch is imported): numbers, then whether the model spec resolves at all."""
    from qwq.model.loading import resolve

    for name in ("max_batch_size", "max_tokens", "max_body_bytes"):
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.guard != "none" and not all(p in ("rules", "learned") for p in args.guard.split("+")):
        raise UsageError(f"--guard must be none or rules, learned joined by '+', got {args.guard!r}")
    resolve(args.model)


def build_server(args: argparse.Namespace):
    """(app, engine) from parsed arguments; loads the model."""
    import torch

    from qwq.engine.engine import Engine
    from qwq.serve.app import create_app
    from qwq.serve.service import ServeContext

    check_args(args)
    if args.threads is not None:
        if args.threads <= 0:
            raise UsageError(f"--threads must be positive, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    guard = None
    if args.guard != "none":
        from qwq.safety.guard import build_guard

        guard = build_guard(args.guard)
    options = dict(max_batch_size=args.max_batch_size, max_model_len=args.max_model_len)
    if args.kv_cache_tokens is not None:
        options["kv_cache_tokens"] = args.kv_cache_tokens
    engine = Engine.load(args.model, quant=args.quant, group_size=args.group_size, dtype=args.dtype,
                         device=args.device, **options)
    ctx = ServeContext.from_engine(engine, args.served_model_name or model_id(args.model),
                                   default_max_tokens=args.max_tokens, guard=guard)
    return create_app(ctx, api_key=args.api_key or None, max_body_bytes=args.max_body_bytes), engine


def main(args: argparse.Namespace) -> int:
    import uvicorn

    check_args(args)
    _check_port(args.host, args.port)
    app, engine = build_server(args)
    ctx = app.state.ctx
    print(f"qwq serve: model {ctx.model_id!r} (context {ctx.max_model_len}, batch {engine.options.max_batch_size}) "
          f"at http://{args.host}:{args.port}/  (API at /v1, metrics at /metrics)", file=sys.stderr, flush=True)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level, http="h11",
                            timeout_graceful_shutdown=5, access_log=args.log_level == "debug")
    uvicorn.Server(config).run()  # Ctrl-C: graceful shutdown (requests aborted), then exit 130
    return 0
