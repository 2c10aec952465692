"""Scale-out: data-parallel training with torch.distributed, rollout and reward workers as Ray actors.

Data parallel (any backend; gloo on CPU): every rank holds the full model, takes its share of each batch, and the
gradients are summed across ranks before the optimizer step. Loss normalisers (token counts, sequence counts) are
all-reduced first, so N ranks compute exactly the gradient of the one-process full batch (up to float summation
order) -- the 2-process gloo test checks that. Launch with `torchrun --nproc-per-node N ...` or any launcher that
sets RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT.

Ray (optional: `pip install ray`): `RolloutWorker` actors each own an engine over a copy of the policy and receive
new weights after every optimizer step; `RewardWorker` actors run verifiers (sandboxed code, sympy) away from the
learner. `ray.init()` with no address starts a local Ray (tests); a cluster address runs them on the cluster.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from qwq.utils.errors import QwqError


class DistributedError(QwqError):
    """torch.distributed or Ray is unavailable or misconfigured."""


@dataclass
class DataParallel:
    """Rank / world size and the few collectives the trainers need; world 1 = plain single-process training."""

    rank: int = 0
    world: int = 1

    @property
    def active(self) -> bool:
        return self.world > 1

    def shard(self, items: Sequence) -> list:
        """This rank's share: items rank, rank + world, ... (all ranks together cover every item once)."""
        return list(items[self.rank::self.world])

    def all_reduce_sum(self, value: torch.Tensor) -> torch.Tensor:
        if self.active:
            import torch.distributed as dist

            value = value.clone()
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value

    def sum_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Sum .grad across ranks in one flat buffer (one collective instead of one per tensor)."""
        if not self.active:
            return
        import torch.distributed as dist

        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        offset = 0
        for p, g in zip(params, grads):
            n = g.numel()
            p.grad = flat[offset:offset + n].view_as(p).clone()
            offset += n

    def broadcast_parameters(self, module: torch.nn.Module, src: int = 0) -> None:
        if not self.active:
            return
        import torch.distributed as dist

        with torch.no_grad():
            for tensor in module.state_dict().values():
                dist.broadcast(tensor, src)


def init_data_parallel(backend: str = "gloo") -> DataParallel:
    """From the launcher's environment (RANK, WORLD_SIZE, ...); single-process when WORLD_SIZE is unset or 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DataParallel()
    import torch.distributed as dist

    if not dist.is_available():
        raise DistributedError("this torch build has no torch.distributed")
    if not dist.is_initialized():
        for key in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
            if key not in os.environ:
                raise DistributedError(f"WORLD_SIZE={world} but {key} is not set (launch with torchrun)")
        dist.init_process_group(backend=backend)
    return DataParallel(dist.get_rank(), dist.get_world_size())


def data_parallel_sft_step(model, optimizer, batch_ids: torch.Tensor, batch_mask: torch.Tensor, dp: DataParallel,
                           grad_clip: float = 1.0) -> float:
    """One SFT optimizer step on this rank's rows of a batch; returns the global mean token loss."""
    from qwq.rl.losses import masked_cross_entropy

    rows = torch.arange(batch_ids.shape[0])[dp.rank::dp.world]
    ids, mask = batch_ids[rows], batch_mask[rows]
    logits = model(ids[:, :-1])
    loss_sum, count = masked_cross_entropy(logits, ids[:, 1:], mask[:, 1:])
    total = dp.all_reduce_sum(count.detach())
    loss = loss_sum / total.clamp(min=1.0)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for p in model.parameters() if p.requires_grad]
    dp.sum_gradients(params)
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    return float(dp.all_reduce_sum(loss.detach()))


# ---- Ray actors --------------------------------------------------------------------------------------------------
def require_ray():
    try:
        import ray
    except ImportError:
        raise DistributedError("Ray is not installed: pip install 'qwq[distributed]' (or pip install ray)") from None
    return ray


class RolloutWorkerImpl:
    """An engine over its own copy of the policy. Build from a saved model directory (HF weights + tokenizer)."""

    def __init__(self, model_dir: str, max_batch: int = 64, max_tokens: int = 1024, threads: int = 1) -> None:
        torch.set_num_threads(threads)
        from qwq.model.weights import load_hf_checkpoint
        from qwq.rl.modeling import make_engine
        from qwq.tokenizer import Tokenizer
        from qwq.tokenizer.chat import ChatTemplate

        self.config, self.model = load_hf_checkpoint(model_dir, dtype=torch.float32)
        self.tokenizer = Tokenizer.from_hf_dir(model_dir)
        self.template = ChatTemplate.for_tokenizer(self.tokenizer)
        self.engine = make_engine(self.model, self.tokenizer, self.config, self.template, max_batch, max_tokens)

    def set_weights(self, state: dict[str, torch.Tensor]) -> bool:
        self.engine.load_weights(state, strict=False)
        return True

    def generate(self, prompts: list[list[int]], params: list[dict]) -> list[list[dict]]:
        from qwq.engine.sampling import SamplingParams

        results = self.engine.generate(prompts, [SamplingParams(**p) for p in params])
        return [[{"token_ids": s.token_ids, "text": s.text, "finish_reason": s.finish_reason,
                  "forced": s.forced_mask} for s in r.samples] for r in results]


class RewardWorkerImpl:
    """Scores completions with a task's own verifier (examples travel as dicts)."""

    def score(self, task: str, task_options: dict | None, completions: list[str], examples: list[dict],
              starts_in_reasoning: bool = True) -> list[float | None]:
        from qwq.rl.data import Example, build_task

        built = build_task(task, task_options)
        return built.reward(completions, [Example(**e) for e in examples], starts_in_reasoning)


def ray_actor(cls: type, **options: Any):
    """`cls` as a Ray actor class (Ray imported only here)."""
    ray = require_ray()
    return ray.remote(**options)(cls) if options else ray.remote(cls)


def start_ray(address: str | None = None, num_cpus: int | None = None) -> Any:
    """Connect to `address` (a cluster) or start a small local Ray; returns the ray module."""
    ray = require_ray()
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address:
            kwargs["address"] = address
        elif num_cpus:
            kwargs["num_cpus"] = num_cpus
        ray.init(**kwargs)
    return ray


class _Sample:
    def __init__(self, data: dict) -> None:
        self.token_ids, self.text, self.finish_reason = data["token_ids"], data["text"], data["finish_reason"]
        self.forced_mask = data["forced"]


class _Result:
    def __init__(self, samples: list[dict]) -> None:
        self.samples = [_Sample(s) for s in samples]


class RayRolloutEngine:
    """The engine API the GRPO trainer uses (`generate`, `weights_changed`), served by Ray actors.

    Prompts are dealt round-robin to the workers; per-request seeds travel with the sampling parameters, so the
    samples do not depend on which worker drew them. After each optimizer step the learner's (merged) weights are
    put in the object store once and every worker copies them in.
    """

    def __init__(self, model, model_dir: str, workers: int, address: str = "local", threads: int = 1,
                 max_batch: int = 64, max_tokens: int = 1024) -> None:
        if workers <= 0:
            raise DistributedError(f"distributed.rollout_workers must be positive for Ray rollouts, got {workers}")
        self.ray = start_ray(None if address in ("", "local") else address, num_cpus=None)
        actor = ray_actor(RolloutWorkerImpl, num_cpus=threads)
        self.model = model
        self.actors = [actor.remote(str(model_dir), max_batch, max_tokens, threads) for _ in range(workers)]

    def weights_changed(self) -> None:
        from qwq.rl.lora import merged_state_dict

        state = {k: v.detach().clone() for k, v in merged_state_dict(self.model).items()}
        ref = self.ray.put(state)
        self.ray.get([a.set_weights.remote(ref) for a in self.actors])

    def generate(self, prompts: Sequence[Sequence[int]], params) -> list[_Result]:
        import dataclasses

        per_prompt = params if isinstance(params, (list, tuple)) else [params] * len(prompts)
        plans: list[list[int]] = [[] for _ in self.actors]
        for i in range(len(prompts)):
            plans[i % len(self.actors)].append(i)
        futures = [actor.generate.remote([list(prompts[i]) for i in idx],
                                         [dataclasses.asdict(per_prompt[i]) for i in idx])
                   for actor, idx in zip(self.actors, plans) if idx]
        outputs = self.ray.get(futures)
        results: list[_Result | None] = [None] * len(prompts)
        for idx, out in zip([p for p in plans if p], outputs):
            for i, samples in zip(idx, out):
                results[i] = _Result(samples)
        return results  # type: ignore[return-value]

    def shutdown(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []
