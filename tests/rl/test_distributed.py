"""Scale-out: 2-process gloo data parallel equals one process on the full batch; Ray rollout workers (if Ray is
installed) produce the local engine's samples."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from qwq.config import TINY
from qwq.rl.distributed import DataParallel, data_parallel_sft_step

CONFIG = TINY.replace(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1)


def _batch():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 64, (6, 12), generator=g)
    mask = torch.ones(6, 12)
    mask[:, :4] = 0  # a prompt without loss
    mask[1, 9:] = 0  # ragged lengths: token-count normalisation must be global
    mask[4, 6:] = 0
    return ids, mask


def _model():
    from qwq.rl.modeling import new_model

    return new_model(CONFIG, 7)


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ids, mask = _batch()
    dp = DataParallel(rank, world)
    for _ in range(2):
        data_parallel_sft_step(model, optimizer, ids, mask, dp)
    if rank == 0:
        torch.save(model.state_dict(), os.path.join(out_dir, "dp.pt"))
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_matches_single_process(tmp_path):
    torch.set_num_threads(1)
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ids, mask = _batch()
    for _ in range(2):
        data_parallel_sft_step(model, optimizer, ids, mask, DataParallel())
    distributed = torch.load(tmp_path / "dp.pt")
    for name, tensor in model.state_dict().items():
        assert torch.allclose(distributed[name], tensor, atol=1e-5), name


def test_shard_covers_every_item_once():
    items = list(range(10))
    shards = [DataParallel(r, 3).shard(items) for r in range(3)]
    assert sorted(sum(shards, [])) == items


@pytest.mark.slow
def test_ray_rollout_workers_match_the_local_engine(toy_world, toy_sft_model, tmp_path):
    pytest.importorskip("ray", reason="Ray not installed (optional extra: pip install 'qwq[distributed]')")
    from qwq.engine.sampling import SamplingParams
    from qwq.rl.distributed import RayRolloutEngine
    from qwq.rl.modeling import make_engine, save_model_dir

    save_model_dir(toy_sft_model, toy_world["config"], toy_world["tokenizer"], tmp_path / "m")
    tok, template = toy_world["tokenizer"], toy_world["template"]
    prompts = [tok.encode(template.render([{"role": "user", "content": e.question}], add_generation_prompt=True))
               for e in toy_world["examples"][:4]]
    params = SamplingParams(temperature=0.0, top_k=0, top_p=1.0, max_new_tokens=12, n=1)
    local = make_engine(toy_sft_model, tok, toy_world["config"], template, 8, 256).generate(prompts, params)
    remote = RayRolloutEngine(toy_sft_model, str(tmp_path / "m"), workers=2, address="local", max_batch=8,
                              max_tokens=256)
    try:
        got = remote.generate(prompts, params)
        assert [r.samples[0].token_ids for r in got] == [r.samples[0].token_ids for r in local]
        remote.weights_changed()  # pushes the learner's weights; nothing changed, so the samples stay the same
        again = remote.generate(prompts, params)
        assert [r.samples[0].token_ids for r in again] == [r.samples[0].token_ids for r in local]
    finally:
        remote.shutdown()
        import ray

        ray.shutdown()
