"""Top-1 agreement and logit error of weight-only int8 / int4 against the fp32-decoded GGUF, on real text.

    python benchmarks/quant_accuracy.py [--gguf PATH] [--positions 512]

Teacher-forced: every position of a few real texts (code, math word problems, prose) is scored once, so the
numbers measure the weights, not the sampling. The reference is the GGUF decoded to fp32 (what transformers runs).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

TEXTS_FILE = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "gsm8k" / "test.jsonl"
CODE = '''def merge_sorted(a: list[int], b: list[int]) -> list[int]:
    """Merge two sorted lists into one sorted list."""
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        if a[i] <= b[j]:
            out.append(a[i]); i += 1
        else:
            out.append(b[j]); j += 1
    return out + a[i:] + b[j:]
'''


def evaluation_texts(count: int = 6) -> list[str]:
    texts = [CODE]
    if TEXTS_FILE.is_file():
        for line in TEXTS_FILE.read_text().splitlines()[:count]:
            row = json.loads(line)
            texts.append(f"Question: {row['question']}\nAnswer: {row['answer']}")
    return texts


@torch.no_grad()
def logits_for(model, token_lists: list[list[int]]) -> torch.Tensor:
    outs = []
    for ids in token_lists:
        outs.append(model(torch.tensor([ids])).float()[0])
    return torch.cat(outs)


def main() -> None:
    from qwq.engine.quant import QuantSpec
    from qwq.engine.quant_gguf import load_gguf_quantized
    from qwq.model.gguf import load_gguf_model
    from qwq.model.hub import ensure_real_model
    from qwq.tokenizer.tokenizer import Tokenizer

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gguf", type=Path, default=None)
    parser.add_argument("--positions", type=int, default=512)
    parser.add_argument("--specs", default="int8,int4,w8a8,int4-all:32,int4-all:128",
                        help="int8 / int4 / w8a8 (the --quant modes) and int4-all:G (int4 everywhere, groups of G)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = args.gguf or ensure_real_model()
    tokenizer = Tokenizer.from_gguf(path)
    token_lists, total = [], 0
    for text in evaluation_texts():
        ids = tokenizer.encode(text)[: max(1, args.positions - total)]
        token_lists.append(ids)
        total += len(ids)
        if total >= args.positions:
            break
    print(f"{total} positions from {len(token_lists)} texts", flush=True)
    _, reference = load_gguf_model(path, dtype=torch.float32)
    ref = logits_for(reference, token_lists)
    ref_top = ref.argmax(-1)
    del reference
    from qwq.engine.loading import load_for_engine

    for name in args.specs.split(","):
        start = time.perf_counter()
        if name in ("int8", "int4", "w8a8"):  # exactly what `--quant NAME` gives (cached conversion reused)
            model = load_for_engine(str(path), quant=name).model
        else:  # "int4-all:G": int4 everywhere with groups of G (no int8 mix)
            group = int(name.partition(":")[2] or 32)
            _, model = load_gguf_quantized(path, QuantSpec("int4", group), dtype=torch.float32)
        load_s = time.perf_counter() - start
        logits = logits_for(model, token_lists)
        agree = (logits.argmax(-1) == ref_top).float().mean().item()
        in_top5 = (ref.topk(5, -1).indices == logits.argmax(-1, keepdim=True)).any(-1).float().mean().item()
        kl = torch.nn.functional.kl_div(logits.log_softmax(-1), ref.log_softmax(-1), log_target=True,
                                        reduction="batchmean").item()
        print(f"{name:12s} top1 agree {agree:.4f}  in ref top5 {in_top5:.4f}  KL(ref||q) {kl:.4f}  "
              f"load {load_s:.1f}s", flush=True)
        del model


if __name__ == "__main__":
    main()
