"""The real Qwen2.5-Coder-0.5B GGUF tokenizer against transformers' GGUF tokenizer, and QwQ's layout on top of it."""

from __future__ import annotations

import json
import unicodedata

import pytest

from qwq.tokenizer import QWQ_TEMPLATE, ChatTemplate, Tokenizer, qwq_tokenizer

pytestmark = pytest.mark.weights

REAL_STRINGS = [
    # code
    "def quicksort(xs):\n    if len(xs) <= 1:\n        return xs\n    pivot, *rest = xs\n"
    "    return quicksort([x for x in rest if x < pivot]) + [pivot] + quicksort([x for x in rest if x >= pivot])\n",
    "const fetchData = async (url) => { const res = await fetch(url); return res.json(); };",
    "#include <stdio.h>\nint main(void) {\n\tprintf(\"Hello, %s!\\n\", \"world\");\n\treturn 0;\n}",
    "fn main() { let v: Vec<u64> = (1..=10).map(|x| x * x).collect(); println!(\"{:?}\", v); }",
    "SELECT u.id, COUNT(*) AS n FROM users u JOIN orders o ON o.user_id = u.id GROUP BY u.id HAVING n > 5;",
    "<div class=\"container\"><p>Hello&nbsp;<b>world</b></p></div>",
    '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius", "days": [1, 2, 3]}}',
    "\\begin{align} \\int_0^\\infty e^{-x^2}\\,dx = \\frac{\\sqrt{\\pi}}{2} \\end{align}",
    "    # deeply indented comment\n        return self._cache[key]  # noqa: E501",
    "x+=1;y-=2;z*=3;w/=4;a**=b;c//=d;e%=f;g&=h;i|=j;k^=l;m>>=n;o<<=p",
    "git commit -m \"fix: handle CRLF\" && git push origin HEAD:refs/for/main",
    "arr[i][j] = arr[i-1][j-1] + (s[i-1] == t[j-1] ? 0 : 1);",
    # natural languages
    "The quick brown fox jumps over the lazy dog.",
    "机器学习是人工智能的一个分支，它使计算机能够从数据中学习。",
    "请一步一步地推理，并把最终答案放在\\boxed{}中。",
    "日本語の文章：今日はいい天気ですね。カタカナとひらがな。",
    "한국어 문장입니다. 안녕하세요!",
    "Привет, мир! Съешь же ещё этих мягких французских булок.",
    "مرحبا بالعالم، هذا نص عربي.",
    "नमस्ते दुनिया, यह हिंदी पाठ है।",
    "Ελληνικά: Γειά σου Κόσμε. עברית: שלום עולם.",
    "Vietnamese: Tiếng Việt có dấu — phở, bánh mì.",
    "naïve café résumé Straße Ærøskøbing Œuvre",
    # emoji
    "😀😃😄😁😆😅😂🤣",
    "👩‍👩‍👧‍👦 family, 👍🏽 thumbs, 🇫🇷🇯🇵🇺🇸 flags, ❤️‍🔥",
    "🦙 llama 🐍 python 🦀 rust",
    # whitespace
    " ",
    "  ",
    "                    twenty spaces",
    "\t\t\ttabs\t",
    "\n",
    "\n\n\n\n",
    "line1\r\nline2\r\n\r\nline4",
    " \n \n\t\n  mixed  \n",
    "trailing spaces   ",
    "a\u00a0b\u2003c\u3000d",
    # special and added tokens
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>",
    "<|endoftext|>",
    "<|fim_prefix|>def f(x):\n    <|fim_suffix|>\n    return y<|fim_middle|>",
    "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>",
    "text<|im_end|>more<|im_start|>",
    "<think> is not special in this vocabulary </think>",
    # numbers
    "1234567890",
    "3.14159265358979323846",
    "-42, +7, 1e-10, 6.022e23, 0x1F, 0b1010, 1_000_000",
    "Call +1 (555) 123-4567 on 2025-03-06 at 14:30:00Z.",
    "AIME answer: 073; 2^10 = 1024; 17! = 355687428096000",
    # words
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    "Donaudampfschifffahrtsgesellschaftskapitän",
    "I'm sure they'll say it's fine, but DON'T and WON'T and She'd've",
    "https://example.com/path/to/resource?query=value&other=123#fragment",
    "camelCaseVariableName snake_case_name SCREAMING_CASE kebab-case-name",
    "the the the the the the the the the the",
    # odd characters
    "\x00\x01\x02 control \x7f",
    "zero\u200bwidth\u200djoiner\ufeffbom",
    "line\u2028separator\u2029paragraph",
    "math ∀x∈ℝ, ∃y: x² + y² ≥ 2xy ⇒ √(x²) = |x|",
]


@pytest.fixture(scope="module")
def ours(real_gguf) -> Tokenizer:
    return Tokenizer.from_gguf(real_gguf)


@pytest.fixture(scope="module")
def reference(real_gguf):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(real_gguf.parent), gguf_file=real_gguf.name)


def test_strings_are_varied_and_nfc():
    assert len(REAL_STRINGS) >= 50 and len(set(REAL_STRINGS)) == len(REAL_STRINGS)
    # transformers' GGUF path skips NFC; qwq applies it (as Qwen2's reference tokenizer does): compare on NFC text
    assert all(unicodedata.is_normalized("NFC", s) for s in REAL_STRINGS)


def test_same_ids_as_transformers(ours, reference):
    mismatches = []
    for text in REAL_STRINGS:
        ids = ours.encode(text)
        if ids != reference.encode(text, add_special_tokens=False):
            mismatches.append(text)
    assert not mismatches


def test_decode_round_trip(ours, reference):
    for text in REAL_STRINGS:
        ids = ours.encode(text)
        assert ours.decode(ids) == text == reference.decode(ids)
        decoder = ours.incremental_decoder()
        deltas = [decoder.feed(i) for i in ids] + [decoder.flush()]
        assert "".join(deltas) == text and all("\ufffd" not in d for d in deltas)
        assert ours.decode(ids, skip_special_tokens=True) == reference.decode(ids, skip_special_tokens=True)


def test_vocabulary_facts(ours):
    assert ours.vocab_size == 151665 and ours.regular_vocab_size == 151643  # the GGUF's 271 padding rows dropped
    assert ours.eos_token_ids == (151645, 151643) and ours.pad_token_id == 151643 and not ours.add_bos
    assert ours.token_to_id("<|im_start|>") == 151644 and ours.token_to_id("<tool_call>") == 151657
    assert ours.token_to_id("[PAD151665]") is None
    assert "You are Qwen, created by Alibaba Cloud" in ours.chat_template


def test_embedded_template_parity(ours, reference):
    tool = {"type": "function", "function": {"name": "run", "description": "Run code",
                                             "parameters": {"type": "object", "properties": {"code": {"type": "string"}}}}}
    conversations = [
        ([{"role": "user", "content": "Write hello world in C."}], None),
        ([{"role": "system", "content": "Answer tersely."}, {"role": "user", "content": "2+2?"},
          {"role": "assistant", "content": "4"}, {"role": "user", "content": "3+3?"}], None),
        ([{"role": "user", "content": "Run print(1)"},
          {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {
              "name": "run", "arguments": {"code": "print(1)"}}}]},
          {"role": "tool", "content": "1"}, {"role": "tool", "content": "done"}], [tool]),
        ([{"role": "user", "content": "你好 😀"}], [tool]),
    ]
    template = ChatTemplate.for_tokenizer(ours)
    for messages, tools in conversations:
        for add in (True, False):
            expected = reference.apply_chat_template(json.loads(json.dumps(messages)), tools=tools, tokenize=False,
                                                     add_generation_prompt=add)
            assert template.render(messages, tools=tools, add_generation_prompt=add) == expected
            assert ours.apply_chat_template(messages, tools=tools, add_generation_prompt=add, tokenize=True) == \
                reference.encode(expected, add_special_tokens=False)


def test_qwq_tokenizer_on_the_real_bpe(ours, shared_data, tmp_path):
    from transformers import AutoTokenizer

    qwq = qwq_tokenizer(ours)
    release = json.loads((shared_data / "qwq-32b" / "added_tokens.json").read_text())
    assert qwq.vocab_size == 151669 and qwq.eos_token_ids == (151645, 151643)
    for token in release["added_tokens"]:
        assert qwq.encode(token["content"]) == [token["id"]]
        assert (token["id"] in qwq.special_ids) == token["special"]
    assert qwq.encode("<think>\nhmm</think>\n\nok") == [151667, 198] + ours.encode("hmm") + [151668, 271] + \
        ours.encode("ok")
    prompt = qwq.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=True)
    assert prompt[-5:] == [151644, qwq.token_to_id("assistant"), 198, 151667, 198]
    assert qwq.chat_template == QWQ_TEMPLATE
    # saved as a HF tokenizer, transformers agrees on ids, decoding and the rendered QwQ prompt
    qwq.save(tmp_path)
    hf = AutoTokenizer.from_pretrained(str(tmp_path))
    messages = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "think</think>\n\nA"},
                {"role": "user", "content": "again"}]
    assert hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == \
        qwq.apply_chat_template(messages, add_generation_prompt=True)
    for text in REAL_STRINGS[:20] + ["<think>\nx\n</think>\n\n<tool_response>\n1\n</tool_response>"]:
        ids = qwq.encode(text)
        assert hf.encode(text, add_special_tokens=False) == ids
        assert hf.decode(ids, skip_special_tokens=True) == qwq.decode(ids, skip_special_tokens=True)


def test_nfc_against_qwen2_reference(ours):
    """Decomposed text: qwq normalizes like transformers' Qwen2Tokenizer (built from the same vocabulary)."""
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    document = json.loads(ours.backend.to_str())
    qwen2 = Qwen2Tokenizer(vocab=document["model"]["vocab"], merges=[tuple(m) for m in document["model"]["merges"]])
    for text in ["cafe\u0301 re\u0301sume\u0301", unicodedata.normalize("NFD", "한국어"),
                 "A\u030angstro\u0308m"]:
        assert not unicodedata.is_normalized("NFC", text)
        assert ours.encode(text) == qwen2.encode(text, add_special_tokens=False)
