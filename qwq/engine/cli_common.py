"""Arguments shared by `qwq generate`, `qwq chat` and `qwq bench`: the model, its loading, and sampling."""

from __future__ import annotations

import argparse

DEFAULT_MODEL = "qwen2.5-coder-0.5b"


def add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("-m", "--model", default=DEFAULT_MODEL,
                       help=f"HF checkpoint dir, .gguf file, qwq run dir, quantized checkpoint or a name "
                            f"(default: {DEFAULT_MODEL})")
    group.add_argument("--quant", choices=("none", "int8", "int4", "w8a8"), default="none",
                       help="quantization applied at load: int8/int4 weight-only (a GGUF is repacked, not inflated), "
                            "w8a8 int8 weights and activations (fastest for batches)")
    group.add_argument("--group-size", type=int, default=None,
                       help="int4 group size (default: 32 for GGUF, whose Q4_K blocks repack exactly; else 128)")
    group.add_argument("--dtype", default="auto", help="activation/KV dtype: auto (fp32 on CPU), float32, bfloat16")
    group.add_argument("--kv-dtype", default=None, help="KV cache dtype (default: the activation dtype); bfloat16 "
                                                         "halves the cache of long reasoning traces")
    group.add_argument("--device", default="cpu", help="cpu or cuda")
    group.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    group.add_argument("--max-batch-size", type=int, default=16)
    group.add_argument("--max-model-len", type=int, default=None, help="context limit (default: the model's)")
    group.add_argument("--compile", action="store_true", help="torch.compile the decode step (slow first steps)")


def add_sampling_args(parser: argparse.ArgumentParser, max_new_tokens: int = 512) -> None:
    group = parser.add_argument_group("sampling (defaults: QwQ's card; --temperature 0 is greedy)")
    group.add_argument("--temperature", type=float, default=0.6)
    group.add_argument("--top-p", type=float, default=0.95)
    group.add_argument("--top-k", type=int, default=40, help="0 disables")
    group.add_argument("--min-p", type=float, default=0.0)
    group.add_argument("--presence-penalty", type=float, default=0.0)
    group.add_argument("--frequency-penalty", type=float, default=0.0)
    group.add_argument("--max-new-tokens", type=int, default=max_new_tokens)
    group.add_argument("--seed", type=int, default=None)
    group.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    from qwq.engine.controls.args import add_control_args

    add_control_args(parser)


def sampling_params(args: argparse.Namespace, n: int = 1, logprobs: bool = False):
    from qwq.engine.sampling import SamplingParams

    from qwq.engine.controls.args import controls_from_args

    controls = controls_from_args(args)
    return SamplingParams(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, min_p=args.min_p,
                          presence_penalty=args.presence_penalty, frequency_penalty=args.frequency_penalty,
                          max_new_tokens=args.max_new_tokens, n=n, seed=args.seed, stop=tuple(args.stop),
                          logprobs=logprobs, controls=controls)


def load_engine(args: argparse.Namespace, **options):
    import torch

    from qwq.engine.engine import Engine
    from qwq.utils.errors import UsageError

    if args.threads is not None:
        if args.threads <= 0:
            raise UsageError(f"--threads must be positive, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    settings = dict(max_batch_size=args.max_batch_size, max_model_len=args.max_model_len, compile=args.compile,
                    kv_dtype=args.kv_dtype)
    settings.update(options)
    return Engine.load(args.model, quant=args.quant, group_size=args.group_size, dtype=args.dtype,
                       device=args.device, **settings)
