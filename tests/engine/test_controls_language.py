"""Language guard: labelled texts (Chinese / English / mixed, code, math), token scripts, steering in the engine."""

from __future__ import annotations

import pytest
import torch

from qwq.engine.controls.language import _token_script, analyze_language, foreign_token_bias, user_script

from controls_fixtures import chat_prompt, greedy, ids_of, qwq_like_tokenizer, scripted_engine

# (text, language of the user, mixed?) -- code and LaTeX must never raise an alarm.
LABELLED = {
    "english prose": ("Let me think about this carefully. The train leaves at noon and travels for three hours, "
                      "so it arrives in the afternoon.", "en", False),
    "chinese prose": ("我们先来分析这个问题。火车中午出发，行驶三个小时，所以下午到达。", "zh", False),
    "english then a chinese sentence": ("First compute the area of the square. 然后我们需要计算这个圆的面积，"
                                        "再把它们相加。 Then the total follows.", "en", True),
    "chinese then an english sentence": ("首先计算正方形的面积。 Now I will compute the area of the circle and add "
                                         "them together. 最后得到总面积。", "zh", True),
    "qwq switching mid-thought": ("So the derivative is 2x. Wait, 让我再检查一下这个导数是否正确。", "en", True),
    "english with one chinese term": ("The word 你好 means hello in Chinese.", "en", False),
    "chinese with english terms": ("我们用 Python 的 list 来存储结果，然后调用 sort 方法。", "zh", False),
    "chinese with variables": ("设 x 为未知数，则 x + y = 10，且 n 是正整数。", "zh", False),
    "english math with latex": ("We have $\\frac{a}{b} = \\sqrt{2}$ and \\(\\alpha + \\beta = \\pi\\), so "
                                "$$\\sum_{i=1}^{n} i = \\frac{n(n+1)}{2}$$ follows.", "en", False),
    "chinese math with latex": ("由于 $\\frac{x^2}{4} + \\frac{y^2}{9} = 1$ 是椭圆方程，我们有 "
                                "$\\int_0^1 f(x)\\,dx = \\frac{1}{2}$。", "zh", False),
    "chinese with a display math block": ("计算如下：\n$$\n\\begin{aligned} a &= b + c \\\\ d &= e \\cdot f "
                                          "\\end{aligned}\n$$\n所以答案是二。", "zh", False),
    "greek letters as symbols": ("The angle α plus the angle β equals π over two, and λ is the eigenvalue.",
                                 "en", False),
    "chinese with a fenced code block": ("我们写一个函数：\n```python\ndef fibonacci(n):\n    if n < 2:\n"
                                         "        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n```\n"
                                         "这个函数是递归的。", "zh", False),
    "chinese with inline code": ("调用 `numpy.linalg.solve(matrix, vector)` 可以解这个线性方程组。", "zh", False),
    "chinese with unfenced code lines": ("代码如下：\nfor (int i = 0; i < n; ++i) { total += values[i]; }\n"
                                         "    return total;\n然后输出结果。", "zh", False),
    "english code block with chinese comment": ("Here is the code:\n```python\n# 计算总和\nprint(sum(values))\n```\n"
                                                "It prints the total.", "en", False),
    "russian inside english": ("The key idea is simple. Давайте проверим это утверждение ещё раз внимательно. "
                               "Then we conclude.", "en", True),
    "english inside japanese": ("この問題を考えます。 We need to find the smallest positive integer here. "
                                "答えは三です。", "ja", True),
    "japanese prose": ("この問題を考えます。答えは三です。", "ja", False),
    "urls and identifiers in chinese": ("参考 https://example.com/docs/api_reference 和变量 max_len_2 的定义。",
                                        "zh", False),
    "numbers only": ("12 * 7 = 84, 84 + 16 = 100.", "en", False),
    "english with a short chinese phrase": ("Let me reconsider. 所以答案是 the same as before.", "en", True),
    "korean inside chinese": ("我们来看这个句子。이 문장은 한국어로 쓰여 있습니다 그리고 길어요。", "zh", True),
}


@pytest.mark.parametrize("name", list(LABELLED))
def test_labelled_texts(name):
    text, language, mixed = LABELLED[name]
    report = analyze_language(text, language)
    assert report.mixed is mixed, (name, report.to_dict())
    if not mixed:
        assert report.target_share is None or report.target_share >= 0.5


def test_enough_labelled_texts_of_each_kind():
    assert len(LABELLED) >= 20
    assert sum(mixed for _, _, mixed in LABELLED.values()) >= 6
    assert sum("code" in name for name in LABELLED) >= 3 and sum("latex" in name or "math" in name
                                                                 for name in LABELLED) >= 3


def test_target_share_and_switch_excerpt():
    report = analyze_language("One two three four. 我们需要计算这个数。 Five six.", "en")
    assert report.switches[0].script == "han" and report.switches[0].excerpt == "我们需要计算这个数"
    assert report.target_share == pytest.approx(6 / 15)
    assert analyze_language("", "en").target_share is None


def test_user_script_reads_the_last_user_turn():
    prompt = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
              "请问二加二等于几？<|im_end|>\n<|im_start|>assistant\n<think>\n")
    assert user_script(prompt) == "han"
    assert user_script("What is 2+2?") == "latin"
    assert user_script("12 + 7") == "latin"


@pytest.mark.parametrize("data,script", [
    ("hello".encode(), "latin"), ("你好".encode(), "han"), ("привет".encode(), "cyrillic"),
    ("α".encode(), "greek"), ("x=你".encode(), "han"), ("你".encode()[:2], "han"),  # a CJK character's first bytes
    ("你".encode()[1:], None), ("12 + 3".encode(), None), ("ん".encode()[:1], None),  # U+3000 block: undecidable
    ("한".encode()[:1], "hangul"),
])
def test_token_scripts_including_byte_fragments(data, script):
    assert _token_script(data) == script


# ---------------------------------------------------------------- steering in the engine


class PrefersChinese:
    """While thinking, offers a Chinese token (logit 5) and an English one (logit 4); closes after `length` tokens."""

    def __init__(self, tok, prompt_len: int, length: int = 12) -> None:
        self.prompt_len, self.length = prompt_len, length
        self.han = tok.encode("我们")[0]
        self.latin = tok.encode(" the")[0]
        self.close, self.eos = ids_of(tok, "</think>", "<|im_end|>")
        self.answer = tok.encode("\n\n我们")

    def __call__(self, context):
        generated = context[self.prompt_len:]
        if self.close in generated:
            k = len(generated) - 1 - generated.index(self.close)
            return {self.answer[k]: 5.0} if k < len(self.answer) else self.eos
        if len(generated) >= self.length:
            return self.close
        return {self.han: 5.0, self.latin: 4.0}


@pytest.mark.parametrize("mode,expect_chinese", [("report", True), ("penalize", False), ("mask", False)])
def test_guard_modes_steer_only_the_thinking(mode, expect_chinese):
    tok = qwq_like_tokenizer()
    prompt = chat_prompt(tok, "Please compute twelve times seven for me.")
    script = PrefersChinese(tok, len(prompt))
    engine = scripted_engine(script, tok)
    sample = engine.generate([prompt], greedy(40, language_guard={"mode": mode, "penalty": 2.0}))[0].samples[0]
    thinking = sample.token_ids[:sample.token_ids.index(script.close)]
    assert len(thinking) == 12
    assert all(t == (script.han if expect_chinese else script.latin) for t in thinking)
    report = sample.controls["language_guard"]
    assert report["target_script"] == "latin" and report["mixed"] is expect_chinese
    assert report["target_share"] == pytest.approx(0.0 if expect_chinese else 1.0)
    assert report["steered_steps"] == (0 if mode == "report" else 13)  # 12 tokens + the step that closed
    assert sample.text.endswith("我们")  # the answer is not steered


def test_guard_follows_a_chinese_user():
    tok = qwq_like_tokenizer()
    prompt = chat_prompt(tok, "我们需要计算这个数")
    script = PrefersChinese(tok, len(prompt))
    sample = scripted_engine(script, tok).generate([prompt], greedy(40, language_guard="mask"))[0].samples[0]
    assert sample.controls["language_guard"]["target_script"] == "han"
    assert sample.token_ids[:12] == [script.han] * 12  # Chinese is the target; Latin stays allowed anyway


def test_foreign_token_bias_masks_other_scripts_only():
    tok = qwq_like_tokenizer()
    bias = foreign_token_bias(tok, "latin", tok.vocab_size + 10, float("-inf"))
    assert bias.shape == (tok.vocab_size + 10,)
    han, cyrillic = tok.encode("我")[0], tok.encode("Пр")[0]
    latin, greek, digit = tok.encode(" the")[0], tok.encode("α")[0], tok.encode("7")[0]
    assert torch.isinf(bias[han]) and torch.isinf(bias[cyrillic])
    assert bias[latin] == 0 and bias[greek] == 0 and bias[digit] == 0
    for token_id in tok.added_tokens:  # <think>, <|im_end|> ... are never masked
        assert bias[token_id] == 0
    han_bias = foreign_token_bias(tok, "han", tok.vocab_size, -3.0)
    assert han_bias[han] == 0 and han_bias[latin] == 0 and han_bias[cyrillic] == -3.0
