"""A reward defined outside qwq, resolved by dotted path in test_registry.py."""


def answer_length(completions, *, scale=1.0, **_fields):
    return [scale * len(c) for c in completions]


def broken_length(completions, **_fields):
    return [1.0]


not_callable = 3
