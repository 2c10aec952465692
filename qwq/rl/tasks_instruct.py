"""Procedural instruction following: a short request plus one IFEval-style verifiable constraint.

The request ("Name three fruits.") has many acceptable answers; the constraint (all capital letters, no commas,
wrap in quotes, a <<title>>, exactly n bullets, an end phrase, a P.S., a keyword to include or avoid) is checked
by the rule verifiers with IFEval's instruction ids and kwargs, so the same checkers score IFEval itself. The
synthetic teacher answers the request but forgets the constraint at its slip rate.
"""

from __future__ import annotations

import random
from typing import Sequence

from qwq.rl.data import Example, Task, columns, think_completion

CATEGORIES = {
    "colors": ("red", "blue", "green", "yellow", "purple", "orange", "black", "white"),
    "fruits": ("apple", "banana", "cherry", "grape", "lemon", "mango", "pear", "plum"),
    "animals": ("cat", "dog", "horse", "tiger", "zebra", "whale", "eagle", "mouse"),
    "tools": ("hammer", "saw", "drill", "wrench", "pliers", "shovel", "rake", "chisel"),
    "sports": ("tennis", "soccer", "golf", "rugby", "hockey", "boxing", "rowing", "skiing"),
    "metals": ("iron", "gold", "silver", "copper", "zinc", "tin", "lead", "nickel"),
    "birds": ("robin", "crow", "owl", "swan", "duck", "hawk", "parrot", "finch"),
    "flowers": ("rose", "tulip", "daisy", "lily", "orchid", "violet", "poppy", "iris"),
    "vegetables": ("carrot", "potato", "onion", "pepper", "cabbage", "celery", "pea", "bean"),
    "drinks": ("tea", "coffee", "juice", "milk", "water", "soda", "cocoa", "lemonade"),
}
COUNT_WORDS = {2: "two", 3: "three", 4: "four", 5: "five"}
END_PHRASES = ("Is there anything else I can help with?", "Any other questions?", "Hope this helps.")

# instruction id -> (prompt text, short thought when the teacher follows it)
CONSTRAINTS = {
    "change_case:english_capital": ("Your entire response should be in English, and in all capital letters.",
                                    "The answer must be all capital letters."),
    "change_case:english_lowercase": ("Your entire response should be in English, and in all lowercase letters. "
                                      "No capital letters are allowed.", "The answer must be all lowercase."),
    "punctuation:no_comma": ("Do not use any commas in your response.", "No commas, so I will use and."),
    "startend:quotation": ("Wrap your entire response with double quotation marks.",
                           "The whole answer goes inside double quotes."),
    "detectable_format:title": ("Your answer must contain a title, wrapped in double angular brackets, such as "
                                "<<poem of joy>>.", "I need a title in double angular brackets."),
    "detectable_format:number_bullet_lists": ("Your answer must contain exactly {n} bullet points. Use the markdown "
                                              "bullet points such as:\n* This is point 1.",
                                              "One markdown bullet point per item, {n} in all."),
    "startend:end_checker": ("Finish your response with this exact phrase {end_phrase} No other words should "
                             "follow this phrase.", "I must end with the exact phrase."),
    "detectable_content:postscript": ("At the end of your response, please explicitly add a postscript starting "
                                      "with P.S.", "I will add a P.S. at the end."),
    "keywords:existence": ("Include the keyword {keyword} in your response.", "The word {keyword} must appear."),
    "keywords:forbidden_words": ("Do not include the word {keyword} in your response.",
                                 "I must not use the word {keyword}."),
}


def _plain(items: list[str], category: str, joiner: str = ", ") -> str:
    """A short English sentence (language detection needs real words, not a bare list)."""
    return f"Here is a list of {COUNT_WORDS.get(len(items), len(items))} {category} that I know: {joiner.join(items)}."


class InstructTask(Task):
    name = "instruct"
    kind = "instruct"

    def __init__(self, constraints: Sequence[str] = tuple(CONSTRAINTS), heldout_fraction: float = 0.2) -> None:
        unknown = [c for c in constraints if c not in CONSTRAINTS]
        if unknown or not constraints:
            raise ValueError(f"unknown constraints {unknown}: expected some of {', '.join(CONSTRAINTS)}")
        self.constraints, self.heldout_fraction = tuple(constraints), heldout_fraction

    def generate(self, rng: random.Random) -> Example:
        category = rng.choice(sorted(CATEGORIES))
        count = rng.choice(sorted(COUNT_WORDS))
        instruction = rng.choice(self.constraints)
        kwargs: dict = {}
        if instruction == "detectable_format:number_bullet_lists":
            kwargs = {"num_bullets": count}
        elif instruction == "startend:end_checker":
            kwargs = {"end_phrase": rng.choice(END_PHRASES)}
        elif instruction == "detectable_content:postscript":
            kwargs = {"postscript_marker": "P.S."}
        elif instruction == "keywords:existence":
            kwargs = {"keywords": [rng.choice(CATEGORIES[category])]}
        elif instruction == "keywords:forbidden_words":
            kwargs = {"forbidden_words": [rng.choice(CATEGORIES[category][:4])]}
        template = CONSTRAINTS[instruction][0]
        keyword = (kwargs.get("keywords") or kwargs.get("forbidden_words") or [""])[0]
        text = template.format(n=count, end_phrase=kwargs.get("end_phrase", ""), keyword=keyword)
        question = f"Name {COUNT_WORDS[count]} {category}. {text}"
        key = f"{category}|{count}|{instruction}|{keyword}{kwargs.get('end_phrase', '')}"
        return Example(self.name, key, question, {"instruction_id_list": [instruction], "kwargs": [kwargs]},
                       {"category": category, "count": count, "instruction": instruction, "kwargs": kwargs})

    def teacher(self, example: Example, rng: random.Random, slip_rate: float) -> str:
        follows = rng.random() >= slip_rate
        for _attempt in range(20):
            text = self._answer(example, rng, follows)
            # the careful teacher checks its answer (the case checkers also need the text to read as English)
            if not follows or self.reward([text], [example])[0] == 1.0:
                return text
        return text

    def _answer(self, example: Example, rng: random.Random, follows: bool) -> str:
        m = example.meta
        instruction, kwargs, count = m["instruction"], m["kwargs"], m["count"]
        pool = list(CATEGORIES[m["category"]])
        forbidden = kwargs.get("forbidden_words", [])
        keywords = kwargs.get("keywords", [])
        # a slip forgets the constraint in a way that breaks it (a forgotten keyword, a forbidden word used)
        if forbidden:
            pool = [w for w in pool if w not in forbidden]
        if keywords:
            pool = [w for w in pool if w not in keywords]
        items = rng.sample(pool, count)
        if (keywords and follows) or (forbidden and not follows):
            items[rng.randrange(count)] = (keywords or forbidden)[0]
        thought = f"The user wants {COUNT_WORDS[count]} {m['category']}."
        answer = _plain(items, m["category"])
        if follows:
            keyword = (keywords or forbidden or [""])[0]
            thought += "\n" + CONSTRAINTS[instruction][1].format(n=count, keyword=keyword)
            answer = self._comply(instruction, kwargs, items, m["category"])
        return think_completion(thought, answer)

    @staticmethod
    def _comply(instruction: str, kwargs: dict, items: list[str], category: str) -> str:
        plain = _plain(items, category)
        if instruction == "change_case:english_capital":
            return plain.upper()
        if instruction == "change_case:english_lowercase":
            return plain.lower()
        if instruction == "punctuation:no_comma":
            return _plain(items, category, " and ")
        if instruction == "startend:quotation":
            return f'"{plain}"'
        if instruction == "detectable_format:title":
            return f"<<{category.capitalize()}>>\n{plain}"
        if instruction == "detectable_format:number_bullet_lists":
            return "\n".join(f"* {item.capitalize()}" for item in items)
        if instruction == "startend:end_checker":
            return f"{plain} {kwargs['end_phrase']}"
        if instruction == "detectable_content:postscript":
            return f"{plain}\nP.S. I like {items[0]}."
        return plain  # keyword constraints are satisfied by the choice of items

    def reward(self, completions: Sequence[str], examples: Sequence[Example], starts_in_reasoning: bool = True
               ) -> list[float | None]:
        from qwq.rl.rewards import instruction_reward

        return instruction_reward(completions, starts_in_reasoning=starts_in_reasoning, **columns(examples))
