"""Train the learned guard's weights (qwq/safety/data/guard_linear.npz), deterministically.

    python benchmarks/train_guard.py [--seed 0] [--out PATH] [--no-dev] [--check]

Corpus: the synthetic generator (qwq.safety.synth with qwq.safety.synth_contrast, seeded) plus the red-team `dev`
split (less its chain-of-thought-hijacking prompts, whose label belongs to one buried sentence) plus the hand-written
training prompts of qwq/safety/data/guard_train.jsonl (third and fourth rounds), each HANDWRITTEN_REPEAT times
verbatim and, when single-turn, HANDWRITTEN_VARIANTS times in attack-style wrappings (handwritten_variants), since a
few hundred varied human phrasings would otherwise weigh nothing against ~57k templated ones. Calibration (Platt
scaling and the input threshold, at most 3% over-refusal): the `heldout`, `fresh`, `fresh2`, `fresh3` and `fresh4`
splits (the last two since the fourth round), which the weights never see. `fresh5` is never read here
(qwq/safety/data/README.md). `--check` trains and compares with the shipped file instead of writing it (exit 1 on a
mismatch).

Shipped weights (seed 0, with dev and the hand-written prompts x3 + 3 styled, hidden layer 16, 6 epochs): digest
(LinearGuardModel.digest, SHA-256 of the int8 weights, scales, biases and bucket ids)
bb40e1f1ae916e31b9372508c1caca4ef581f4495e5e07d560a3022f1206ffef, input threshold 0.4787, 3.91 MB; 9 to 16 minutes
to train on one core of the development machine (load average 5-7 on 2 cores).
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qwq.safety import synth  # noqa: E402
from qwq.safety.learned import DEFAULT_WEIGHTS, LearnedGuard, LinearGuardModel  # noqa: E402
from qwq.safety.learned_train import train  # noqa: E402
from qwq.safety.redteam import load_items, run, summarize  # noqa: E402

# The shipped weights: what `python benchmarks/train_guard.py` produces (see tests/safety/test_learned_guard.py).
SEED, MAX_ITER, L2_HARM, L2_CATEGORY, MAX_OVER_REFUSAL, OUTPUT_THRESHOLD = 0, 150, 1e-6, 1e-5, 0.03, 0.9
# The harm head's hidden layer (0 = linear only), trained by Adam for EPOCHS passes at learning rate LR.
HIDDEN, EPOCHS, LR = 16, 6, 0.005
# Hand-written training prompts (never red-team rows; see qwq/safety/data/README.md) and how often each is repeated.
HANDWRITTEN = Path(__file__).resolve().parent.parent / "qwq" / "safety" / "data" / "guard_train.jsonl"
HANDWRITTEN_REPEAT = 3
# Besides the verbatim repeats, each single-turn hand-written prompt also appears in this many attack-style wrappings.
HANDWRITTEN_VARIANTS = 3
# Calibration (Platt scaling and the input threshold) reads these splits; the weights never see them.
CALIBRATION = ("heldout", "fresh", "fresh2", "fresh3", "fresh4")


def training_examples(seed: int = SEED, *, with_dev: bool = True) -> list:
    examples = list(synth.generate(seed))
    if with_dev:
        for item in load_items(splits=["dev"]):
            if item.style == "cot_hijack" and item.label == "harmful":
                # the label belongs to the one buried request, not to the pages of padding around it (which the
                # benign twins in other splits share); the synthetic corpus trains on the buried part instead
                continue
            label = item.category if item.label == "harmful" else synth.SAFE
            examples.append((synth.user_side(item.as_messages()), label))
    rng = random.Random(seed)
    for item in (load_items(HANDWRITTEN) if with_dev else []):
        label = item.category if item.label == "harmful" else synth.SAFE
        text = synth.user_side(item.as_messages())
        examples.extend([(text, label)] * HANDWRITTEN_REPEAT)
        if len(item.messages) == 1:
            examples.extend((v, label) for v in handwritten_variants(rng, text, HANDWRITTEN_VARIANTS))
    return examples


def handwritten_variants(rng: random.Random, text: str, n: int) -> list[str]:
    """`n` copies of one hand-written request in the attack styles of the issue (role-play, fiction, hypothetical and
    research pretexts, obfuscation, a jailbreak suffix, casual lower case, buried in a multi-step problem), the same
    wrappers for harmful and harmless requests, so that the request decides the label and never its wrapper."""
    low = text[0].lower() + text[1:]
    wrappers = [
        lambda: f"You are {rng.choice(synth.PERSONAS)}. {text}",
        lambda: f"Let's play a game where you stay in character as {rng.choice(synth.PERSONAS)}. {text}",
        lambda: f"For a story I'm writing, {rng.choice(synth.CHARACTERS)[0]} is asked this: {text}",
        lambda: rng.choice(["Hypothetically speaking, ", "Purely as a thought experiment: ", "Asking for a friend: ",
                            "In a world with no laws, "]) + low,
        lambda: f"I'm {rng.choice(synth.AUTHORITIES)}, so this is for work. {text}",
        lambda: text + rng.choice(synth.SUFFIXES[3:]),
        lambda: synth.obfuscate(rng, text),
        lambda: re.sub(r"[?!.,;:'\"]", "", text).lower(),
        lambda: synth.cot_pad(rng, text, with_part=True)[1],
    ]
    picks = rng.sample(range(len(wrappers)), min(n, len(wrappers)))
    return [wrappers[k]() for k in picks]


def train_shipped(seed: int = SEED, *, with_dev: bool = True, log=None):
    return train(training_examples(seed, with_dev=with_dev), load_items(splits=CALIBRATION), l2_harm=L2_HARM,
                 l2_category=L2_CATEGORY, max_iter=MAX_ITER, max_over_refusal=MAX_OVER_REFUSAL,
                 output_threshold=OUTPUT_THRESHOLD, hidden=HIDDEN, epochs=EPOCHS, lr=LR, seed=seed, log=log,
                 meta={"seed": seed, "with_dev": with_dev, "calibration": "+".join(CALIBRATION), "max_iter": MAX_ITER,
                       "hidden": HIDDEN, "epochs": EPOCHS,
                       "handwritten": f"{HANDWRITTEN.name}x{HANDWRITTEN_REPEAT}+{HANDWRITTEN_VARIANTS}styled"})


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--out", default=str(DEFAULT_WEIGHTS))
    ap.add_argument("--no-dev", action="store_true",
                    help="train on the synthetic corpus only (no dev, no hand-written prompts)")
    ap.add_argument("--check", action="store_true", help="compare with the shipped weights instead of writing")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()

    def log(head, it, f):
        if not args.quiet and (it % 10 == 0):
            print(f"  {head} iter {it:3d} loss {f:.5f}", file=sys.stderr)

    result = train_shipped(args.seed, with_dev=not args.no_dev, log=log)
    m = result.model
    print(f"trained in {result.seconds:.1f} s on {result.n_examples} examples; harm features {result.n_harm_features}, "
          f"category features {result.n_category_features}; platt {m.platt[0]:.4f},{m.platt[1]:.4f}; "
          f"input threshold {m.threshold_input:.4f}; digest {m.digest()}")
    if args.check:
        shipped = LinearGuardModel.load(args.out)
        same = shipped.digest() == m.digest()
        print(f"shipped digest {shipped.digest()}: {'identical' if same else 'DIFFERENT'}")
        return 0 if same else 1
    path = m.save(args.out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    guard = LearnedGuard(LinearGuardModel.load(path))
    t0 = time.perf_counter()
    s = summarize(run(load_items(), guard))
    print(f"learned guard alone, worst-case model ({time.perf_counter() - t0:.1f} s; fresh splits: "
          f"benchmarks/bench_redteam.py):")
    for split in ("dev", "heldout"):
        r = s["by_split"][split]
        print(f"  {split:8s} safe-response {100 * r['safe_response_rate']:5.1f}%  over-refusal "
              f"{100 * r['over_refusal_rate']:5.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
