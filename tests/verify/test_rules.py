"""Format, language consistency, length and repetition rules."""

import pytest

from qwq.verify.rules import (check_format, dominant_script, language_consistency, ngram_repetition,
                              overlong_penalty, script_for_language, script_share)


@pytest.mark.parametrize("completion, ok", [
    ("reasoning</think>\n\nThe answer is 5.", True),
    ("<think>\nreasoning</think>answer", True),  # an opening tag repeated by the model is tolerated
    ("reasoning without end", False),
    ("reasoning</think>", False),
    ("reasoning</think>   \n", False),
    ("a</think>b</think>c", False),
    ("a</think>b<think>c", False),
    ("a<think>b</think>c", False),
    ("", False),
])
def test_format_for_qwq_completions(completion, ok):
    assert check_format(completion).passed is ok


def test_format_when_the_response_must_open_the_thinking_itself():
    assert check_format("<think>r</think>a", starts_in_reasoning=False).passed
    assert not check_format("r</think>a", starts_in_reasoning=False).passed
    assert not check_format("just an answer", starts_in_reasoning=False).passed


def test_format_can_require_a_box():
    assert check_format("r</think>\\boxed{3}", require_boxed=True).passed
    result = check_format("r</think>3", require_boxed=True)
    assert not result.passed and "boxed" in result.reason
    assert not check_format("r</think>\\boxed{}", require_boxed=True).passed


def test_script_share_ignores_code_latex_and_urls():
    assert script_share("这是答案 $x^2 + y$，见 `code_here` https://example.com \\(\\alpha\\)", "han") == 1.0
    assert script_share("中文 and English", "han") == pytest.approx(2 / 12)
    assert script_share("12345 + 678", "latin") is None


def test_language_consistency_counts_thinking_and_answer():
    pure = "让我想一想这个问题</think>答案是五"
    mixed = "让我想一想 let me think in English instead</think>答案是五"
    assert language_consistency(pure, "zh") == 1.0
    assert language_consistency(mixed, "zh") < 0.5
    assert language_consistency("Let me see</think>Answer: five", "en") == 1.0
    assert language_consistency("Думаю</think>Ответ: пять", "ru") == 1.0
    assert language_consistency("日本語で考えます</think>答えは五です", "ja") == 1.0


def test_script_names_and_dominant_script():
    assert script_for_language("zh-CN") == "han" and script_for_language("fa") == "arabic"
    assert script_for_language("cyrillic") == "cyrillic"
    with pytest.raises(ValueError, match="unknown language"):
        script_for_language("klingon")
    assert dominant_script("请用中文回答 please") == "han"
    assert dominant_script("ひらがなと漢字") == "kana"
    assert dominant_script("1 + 1") is None


def test_overlong_penalty_is_the_dapo_ramp():
    assert overlong_penalty(100, 1000, 200) == 0.0
    assert overlong_penalty(800, 1000, 200) == 0.0
    assert overlong_penalty(900, 1000, 200) == pytest.approx(-0.5)
    assert overlong_penalty(1000, 1000, 200) == pytest.approx(-1.0)
    assert overlong_penalty(1001, 1000, 200) == -1.0
    with pytest.raises(ValueError):
        overlong_penalty(1, 100, 200)


def test_ngram_repetition_detects_loops():
    fresh = "The quick brown fox jumps over the lazy dog while a cat sleeps nearby in the sun"
    loop = "Wait, let me check again. " * 40
    assert ngram_repetition(fresh) == 0.0
    assert ngram_repetition(loop) > 0.9
    assert ngram_repetition("一二三四五六七八" * 10, n=4) > 0.8
    assert ngram_repetition("too short") == 0.0
    with pytest.raises(ValueError):
        ngram_repetition("x", n=0)
