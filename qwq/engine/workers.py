"""One model, several local processes decoding it: `ProcessEngines` splits a generate() call's requests between this
process and worker processes that read the same weights from shared memory.

    engines = ProcessEngines(model, tokenizer, config, processes=2, max_batch_size=128)
    results = engines.generate(prompts, params)    # the same results as Engine.generate, in prompt order
    ...update the weights in place...; engines.weights_changed()
    engines.close()

Why: a CPU decode step of a small model is many small ops, and a second intra-op thread buys little (measured on an
RL rollout batch of 128 samples of the tiny model: 0.82 s on one thread, 0.58 s on two, for 1.5x the CPU time).
Two processes of one thread, each decoding half of the requests, keep both cores busy with the work itself.

The model's tensors are moved to shared memory once (`share_memory_()`), so a worker reads the very weights the
trainer updates in place: nothing is copied per call. A request's tokens depend only on its own seed and the model
(the engine's batch invariance), and the split is fixed by the request order, so a run is reproducible.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from typing import Any, Sequence

import torch

from qwq.engine.sampling import SamplingParams
from qwq.utils.errors import QwqError

START_TIMEOUT_S = 120.0


class EngineWorkerError(QwqError):
    """A worker process failed to start, died, or raised while generating."""


def _serve(conn, model, tokenizer, config, options: dict) -> None:
    """The worker's loop: build an engine over the shared model, then answer generate / stop messages."""
    torch.set_num_threads(1)
    try:
        from qwq.engine.engine import Engine

        engine = Engine(model, tokenizer, config, **options)
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(("error", traceback.format_exc()))
        return
    conn.send(("ready", None))
    while True:
        try:
            message = conn.recv()
        except EOFError:  # the parent is gone
            return
        if message is None:
            return
        prompts, params, reset = message
        try:
            started = time.process_time()
            if reset:
                engine.weights_changed()
            results = engine.generate(prompts, params)
            conn.send(("ok", (results, time.process_time() - started)))
        except BaseException:  # noqa: BLE001
            conn.send(("error", traceback.format_exc()))


@contextlib.contextmanager
def _threads(count: int):
    previous = torch.get_num_threads()
    if previous != count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


class ProcessEngines:
    """Engine.generate over `processes` processes (this one + processes - 1 spawned workers), one thread each."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any = None, config: Any = None, *, processes: int = 2,
                 **engine_options: Any) -> None:
        from qwq.engine.engine import Engine

        if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
            raise EngineWorkerError(f"processes must be a positive integer, got {processes!r}")
        if next(iter(model.parameters())).device.type != "cpu":
            raise EngineWorkerError("ProcessEngines shares CPU memory between processes; the model is not on the CPU")
        if processes > 1:
            try:
                model.share_memory()
            except RuntimeError as exc:
                raise EngineWorkerError(f"could not move the model to shared memory for {processes} processes ({exc}); "
                                        f"/dev/shm may be too small: use one process (run.rollout_processes=1 in "
                                        f"training)") from None
        self.local = Engine(model, tokenizer, config, **engine_options)
        self.model = model
        self._workers: list[tuple[Any, Any]] = []
        self._reset = False
        self.worker_cpu_seconds = 0.0  # CPU time the workers spent in generate() calls, summed (for step accounting)
        context = torch.multiprocessing.get_context("spawn")
        options = {k: v for k, v in engine_options.items() if k != "chat_template"}
        try:
            for _ in range(processes - 1):
                parent, child = context.Pipe()
                process = context.Process(target=_serve, args=(child, model, tokenizer, config, options), daemon=True)
                process.start()
                child.close()
                self._workers.append((process, parent))
            for index, (process, conn) in enumerate(self._workers):
                self._receive(index, process, conn, START_TIMEOUT_S, "starting")
        except BaseException:
            self.close()
            raise

    @property
    def processes(self) -> int:
        return 1 + len(self._workers)

    def _receive(self, index: int, process, conn, timeout: float | None, doing: str) -> Any:
        waited = 0.0
        while not conn.poll(1.0):
            waited += 1.0
            if not process.is_alive():
                raise EngineWorkerError(f"engine worker {index + 1} died while {doing} (exit code {process.exitcode})")
            if timeout is not None and waited >= timeout:
                raise EngineWorkerError(f"engine worker {index + 1} did not answer within {timeout:.0f} s while {doing}")
        try:
            status, payload = conn.recv()
        except EOFError:
            raise EngineWorkerError(f"engine worker {index + 1} closed its pipe while {doing}") from None
        if status == "error":
            raise EngineWorkerError(f"engine worker {index + 1} failed while {doing}:\n{payload}")
        return payload

    def weights_changed(self) -> None:
        """Drop every process's prefix-cached blocks (the weights under them changed)."""
        self.local.weights_changed()
        self._reset = True

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams | Sequence[SamplingParams] | None = None
                 ) -> list:
        """Engine.generate, with request i decoded by process i mod `processes` (this process takes share 0)."""
        if not self._workers:
            return self.local.generate(prompts, params)
        params = params if params is not None else SamplingParams()
        per_prompt = [params] * len(prompts) if isinstance(params, SamplingParams) else list(params)
        shares = [list(range(k, len(prompts), self.processes)) for k in range(self.processes)]
        for (process, conn), share in zip(self._workers, shares[1:]):
            if share:
                conn.send(([list(prompts[i]) for i in share], [per_prompt[i] for i in share], self._reset))
        self._reset = False
        results: list = [None] * len(prompts)
        try:
            if shares[0]:
                with _threads(1):
                    for i, result in zip(shares[0], self.local.generate([prompts[i] for i in shares[0]],
                                                                        [per_prompt[i] for i in shares[0]])):
                        results[i] = result
        finally:  # collect every worker's answer (even after a local failure) so the pipes stay in step
            failure = None
            for index, ((process, conn), share) in enumerate(zip(self._workers, shares[1:])):
                if not share:
                    continue
                try:
                    answer, cpu_seconds = self._receive(index, process, conn, None, "generating")
                    self.worker_cpu_seconds += cpu_seconds
                    for i, result in zip(share, answer):
                        results[i] = result
                except EngineWorkerError as exc:
                    failure = failure or exc
            if failure is not None:
                raise failure
        return results

    def close(self) -> None:
        """Stop the workers (idempotent)."""
        for process, conn in self._workers:
            with contextlib.suppress(OSError, BrokenPipeError):
                conn.send(None)
        for process, conn in self._workers:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
            conn.close()
        self._workers = []

    def __enter__(self) -> "ProcessEngines":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
