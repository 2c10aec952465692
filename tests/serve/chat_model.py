"""A tiny chat model for the server tests: a small BPE with QwQ's token layout and a 2-layer Qwen2 trained (in a few
seconds, on CPU) to memorise a handful of QwQ-style conversations: think, close `</think>`, answer; call a tool with
a Hermes `<tool_call>` block when tools are offered; answer from a `<tool_response>`.

Real weights, real tokenizer, real template: the server runs exactly the code paths it runs for QwQ-32B, and the
outputs of the scripted conversations are predictable enough to assert on (sampling at QwQ's temperature 0.6 over a
memorised distribution almost always picks the memorised token; tests that need exact text use temperature 0).

`build_chat_model()` returns (model, tokenizer, chat template); `save_chat_model(dir)` writes a HF checkpoint that
`qwq serve -m DIR` loads. The benchmark (benchmarks/bench_serve_load.py) imports this file too.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather of a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
WEATHER_ARGS = {"city": "Paris"}
WEATHER_RESULT = json.dumps({"temperature": 21})

ADD_QUESTION = "What is 2+3?"
ADD_REASONING = "Two plus three makes five."
ADD_ANSWER = "The answer is 5."
HELLO_QUESTION = "Say hello."
HELLO_REASONING = "A greeting is wanted here."
HELLO_ANSWER = "Hello there, friend!"
WEATHER_QUESTION = "What is the weather in Paris?"
WEATHER_REASONING = "I should call the weather tool."
TOOL_REASONING = "The tool reports 21 degrees."
TOOL_ANSWER = "It is 21 degrees in Paris."
LONG_QUESTION = "Think for a long time."
MIN_TARGET_PROB = 0.97  # confident enough that temperature-0.6 sampling follows the script
LONG_REASONING = " ".join(["Still thinking about it carefully."] * 12)


@dataclass(frozen=True)
class Script:
    messages: list
    tools: list | None
    completion: str  # what the model writes after the generation prompt `<think>\n` (ends with <|im_end|>)


def weather_call_message() -> dict:
    return {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": json.dumps(WEATHER_ARGS)}}]}


def scripts() -> list[Script]:
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    return [
        Script([{"role": "user", "content": ADD_QUESTION}], None,
               f"{ADD_REASONING}\n</think>\n\n{ADD_ANSWER}<|im_end|>"),
        Script([{"role": "user", "content": HELLO_QUESTION}], None,
               f"{HELLO_REASONING}\n</think>\n\n{HELLO_ANSWER}<|im_end|>"),
        Script([{"role": "user", "content": LONG_QUESTION}], None,
               f"{LONG_REASONING}\n</think>\n\nDone.<|im_end|>"),
        Script([{"role": "user", "content": WEATHER_QUESTION}], [WEATHER_TOOL],
               f"{WEATHER_REASONING}\n</think>\n\n{call}<|im_end|>"),
        Script([{"role": "user", "content": WEATHER_QUESTION}, weather_call_message(),
                {"role": "tool", "tool_call_id": "call_1", "content": WEATHER_RESULT}], [WEATHER_TOOL],
               f"{TOOL_REASONING}\n</think>\n\n{TOOL_ANSWER}<|im_end|>"),
        # a second turn: the earlier answer is in the history without its thinking
        Script([{"role": "user", "content": ADD_QUESTION},
                {"role": "assistant", "content": f"{ADD_REASONING}\n</think>\n\n{ADD_ANSWER}"},
                {"role": "user", "content": HELLO_QUESTION}], None,
               f"{HELLO_REASONING}\n</think>\n\n{HELLO_ANSWER}<|im_end|>"),
        # the chat page test's conversation
        Script([{"role": "user", "content": LONG_QUESTION}, {"role": "assistant", "content": "Done."},
                {"role": "user", "content": ADD_QUESTION}], None,
               f"{ADD_REASONING}\n</think>\n\n{ADD_ANSWER}<|im_end|>"),
    ]


def build_tokenizer():
    from qwq.tokenizer import QWQ_ADDED_TOKENS, QWQ_TEMPLATE, ChatTemplate, train_bpe

    template = ChatTemplate(QWQ_TEMPLATE)
    corpus = []
    for script in scripts():
        corpus.append(template.render(script.messages, tools=script.tools, add_generation_prompt=True)
                      + script.completion)
    corpus.append("The quick brown fox jumps over the lazy dog. 0123456789 + - * / = ? ! , . café 你好 ✓")
    special = [t.content for t in QWQ_ADDED_TOKENS if t.special]
    plain = [t.content for t in QWQ_ADDED_TOKENS if not t.special]
    return train_bpe(corpus * 4, 640, special, added_tokens=plain, eos_token="<|im_end|>", chat_template=QWQ_TEMPLATE)


def model_config(vocab_size: int):
    from qwq.config import ModelConfig

    return ModelConfig(vocab_size=vocab_size, hidden_size=96, intermediate_size=192, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-6,
                       rope_theta=10000.0, tie_word_embeddings=False, torch_dtype="float32",
                       eos_token_id=None)


def build_chat_model(seed: int = 0, max_steps: int = 600, verbose: bool = False):
    """Train the tiny chat model until every scripted token is the argmax with p > MIN_TARGET_PROB under teacher
    forcing (so greedy decoding reproduces every script exactly); raises if it does not get there."""
    import torch

    from qwq.model.qwen2 import Qwen2ForCausalLM
    from qwq.tokenizer import ChatTemplate

    tokenizer = build_tokenizer()
    template = ChatTemplate.for_tokenizer(tokenizer)
    rows = []
    for script in scripts():
        prompt = tokenizer.encode(template.render(script.messages, tools=script.tools, add_generation_prompt=True))
        completion = tokenizer.encode(script.completion)
        rows.append((prompt, completion))
    width = max(len(p) + len(c) for p, c in rows)
    config = model_config(tokenizer.vocab_size)
    if width > config.max_position_embeddings:
        raise RuntimeError(f"scripted conversation of {width} tokens exceeds the model context")
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    targets = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (prompt, completion) in enumerate(rows):
        seq = prompt + completion
        ids[i, :len(seq)] = torch.tensor(seq)
        targets[i, len(prompt) - 1:len(seq) - 1] = torch.tensor(completion)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
        model.init_weights(std=0.05, generator=torch.Generator().manual_seed(seed))
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
        start = time.perf_counter()
        mask = targets != -100
        for step in range(max_steps):
            logits = model(ids)
            with torch.no_grad():  # teacher-forced: every memorised token must be a confident argmax
                worst = float(logits.softmax(-1)[mask].gather(1, targets[mask][:, None]).min())
            if worst > MIN_TARGET_PROB:
                break
            loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))
            if verbose and step % 25 == 0:
                print(f"step {step} loss {loss.item():.4f} worst p {worst:.3f} ({time.perf_counter() - start:.1f}s)")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        else:
            raise RuntimeError(f"the tiny chat model did not converge in {max_steps} steps (worst p {worst:.3f})")
        model.eval()
    finally:
        torch.set_num_threads(threads)
    return model, tokenizer, template


def save_chat_model(directory: str | Path, model=None, tokenizer=None) -> Path:
    """A HF checkpoint directory (config, safetensors, tokenizer with the QwQ template) of the tiny chat model."""
    from qwq.model.weights import save_hf_checkpoint

    if model is None or tokenizer is None:
        model, tokenizer, _ = build_chat_model()
    directory = Path(directory)
    save_hf_checkpoint(model, model.config, directory)
    tokenizer.save(directory)
    return directory


if __name__ == "__main__":
    build_chat_model(verbose=True)
