"""`qwq sandbox run FILE` and `qwq sandbox serve`: the code-execution sandbox from the command line.

`run` exits 0 when the verdict is OK, 1 for any other verdict, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from qwq.utils.errors import UsageError


def add_args(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    run = sub.add_parser("run", help="run one program in the sandbox and print its verdict")
    run.add_argument("file", help="source file (.py, .cpp, .js)")
    run.add_argument("--lang", choices=["python", "cpp", "js"], help="language (default: from the extension)")
    run.add_argument("--stdin", metavar="F", help="file whose contents become the program's stdin")
    run.add_argument("--cpu-seconds", type=float, default=4.0, help="CPU time limit (default 4)")
    run.add_argument("--wall-seconds", type=float, help="idle wall-clock guard (default 2 x CPU + 1)")
    run.add_argument("--memory-mb", type=int, default=1024, help="memory limit in MB (default 1024)")
    run.add_argument("--json", action="store_true", help="print one JSON object (verdict, output, isolation)")
    serve = sub.add_parser("serve", help="serve /run, /judge, /batch, /run_code and /health over HTTP")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=4, help="programs run at once (default 4)")
    serve.add_argument("--max-queue", type=int, default=32, help="requests waiting before 429 (default 32)")
    serve.add_argument("--max-body-mb", type=float, default=16.0, help="largest request body (default 16 MB)")
    health = sub.add_parser("health", help="show which isolation layers are active on this machine")
    health.add_argument("--json", action="store_true")


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {what} {path!r}: {exc}") from None


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    if args.action == "serve":
        return _serve(args)
    from qwq.sandbox.runner import Sandbox

    if args.action == "health":
        with Sandbox() as sandbox:
            report = sandbox.isolation
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            for name, layer in report["layers"].items():
                print(f"{'active  ' if layer['active'] else 'INACTIVE'}  {name:16s} {layer['detail']}")
        return 0
    return _run(args, Sandbox)


def _run(args, sandbox_cls) -> int:
    from qwq.sandbox.languages import get_language, language_for_file
    from qwq.sandbox.verdicts import Limits

    language = get_language(args.lang or language_for_file(args.file)).name
    code = _read(args.file, "source file")
    stdin = _read(args.stdin, "stdin file") if args.stdin else ""
    limits = Limits(cpu_seconds=args.cpu_seconds, wall_seconds=args.wall_seconds, memory_mb=args.memory_mb)
    with sandbox_cls() as sandbox:
        result = sandbox.run(code, language, stdin, limits)
        isolation = sandbox.isolation
    if args.json:
        print(json.dumps({**result.to_dict(), "language": language, "isolation": isolation}))
    else:
        print(f"verdict: {result.verdict.value}" + (f" ({result.message})" if result.message else ""))
        print(f"cpu {result.cpu_seconds:.3f} s, wall {result.wall_seconds:.3f} s, "
              f"peak memory {result.peak_memory_mb:.1f} MB, exit code {result.exit_code}, signal {result.signal}")
        if result.compile is not None and result.compile.stderr:
            print("--- compiler ---\n" + result.compile.stderr.rstrip())
        print("--- stdout" + (" (truncated)" if result.stdout_truncated else "") + " ---")
        sys.stdout.write(result.stdout if result.stdout.endswith("\n") or not result.stdout else result.stdout + "\n")
        print("--- stderr" + (" (truncated)" if result.stderr_truncated else "") + " ---")
        sys.stdout.write(result.stderr if result.stderr.endswith("\n") or not result.stderr else result.stderr + "\n")
        if isolation["inactive"]:
            print(f"warning: isolation layers inactive here: {', '.join(isolation['inactive'])}", file=sys.stderr)
    return 0 if result.ok else 1


def _serve(args) -> int:
    from qwq.sandbox.service import serve

    if args.workers < 1 or args.max_queue < 0 or args.max_body_mb <= 0 or not 0 < args.port < 65536:
        raise UsageError("--workers must be >= 1, --max-queue >= 0, --max-body-mb > 0, --port in 1..65535")
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        logging.getLogger("qwq.sandbox").warning(
            "serving on %s: anyone who can reach this address can run code here (no authentication)", args.host)
    serve(args.host, args.port, workers=args.workers, max_queue=args.max_queue,
          max_body_bytes=int(args.max_body_mb * 1024 * 1024))
    return 0
