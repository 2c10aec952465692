"""Sample texts shared by the tokenizer tests (a module, because conftest names are ambiguous to import)."""

STRINGS = [
    "Hello, world!",
    "def add(a, b):\n    return a + b\n",
    "日本語のテキストと中文混合 text",
    "emoji 😀🎉👩‍👩‍👧‍👦 and flags 🇯🇵",
    "   leading and trailing spaces   ",
    "\n\n\ttabs\tand\nnewlines\r\n",
    "<think>\nreasoning\n</think>\n\nanswer",
    "<|im_start|>system\nYou are helpful.<|im_end|>",
    "numbers 1234567890 3.14 -42 1e-9",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "",
    "a",
    "Ünïcödé ñ ç ø å ß Ω ж ע ب ह",
]
