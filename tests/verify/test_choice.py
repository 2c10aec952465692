"""Multiple-choice verification."""

from qwq.verify.choice import normalize_choice_gold, verify_choice, verify_choice_batch


def test_right_and_wrong_letters():
    assert verify_choice('thinking</think>{"answer": "C"}', "C").correct is True
    assert verify_choice('thinking</think>{"answer": "B"}', "C").correct is False
    assert verify_choice("thinking</think>The answer is (c).", "(C)").correct is True


def test_gold_forms_and_invalid_gold():
    assert normalize_choice_gold("(b)") == "B"
    assert normalize_choice_gold("\\text{D}") == "D"
    result = verify_choice("x</think>A", "Z")
    assert result.correct is None and "not one of the options" in result.reason


def test_custom_letters_and_batch():
    results = verify_choice_batch(['x</think>{"answer": "E"}', 'x</think>{"answer": "E"}'], ["E", "A"],
                                  letters="ABCDE")
    assert [r.correct for r in results] == [True, False]
