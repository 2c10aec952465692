"""IFEval-style instruction checkers, strict and loose.

    check_instruction("punctuation:no_comma", response) -> bool
    evaluate_ifeval(response, instruction_id_list, kwargs_list, prompt="") -> IFEvalResult

Loose mode (as in the IFEval paper) accepts an instruction when any of eight relaxed versions of the response
passes: the response with its first line, last line or both removed, each also with markdown `*` removed; this
forgives a chatty first line ("Sure, here it is:") or a trailing sign-off. An empty response follows nothing.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from qwq.verify.ifeval.checkers import CHECKERS, InstructionError

SUPPORTED_INSTRUCTIONS: tuple[str, ...] = tuple(CHECKERS)

__all__ = ["SUPPORTED_INSTRUCTIONS", "IFEvalResult", "InstructionError", "check_instruction", "evaluate_ifeval",
           "loose_variants"]


@dataclass(frozen=True)
class IFEvalResult:
    instruction_ids: tuple[str, ...]
    strict: tuple[bool, ...]
    loose: tuple[bool, ...]

    @property
    def prompt_strict(self) -> bool:
        return all(self.strict)

    @property
    def prompt_loose(self) -> bool:
        return all(self.loose)

    @property
    def strict_fraction(self) -> float:
        return sum(self.strict) / len(self.strict) if self.strict else 1.0

    def to_dict(self) -> dict:
        return {"instruction_ids": list(self.instruction_ids), "strict": list(self.strict),
                "loose": list(self.loose), "prompt_strict": self.prompt_strict, "prompt_loose": self.prompt_loose}


def loose_variants(response: str) -> list[str]:
    lines = response.split("\n")
    cut = ["\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(), "\n".join(lines[1:-1]).strip()]
    base = [response, *cut]
    return base + [v.replace("*", "") for v in base]


def _arguments(instruction_id: str, kwargs: Mapping[str, Any] | None, prompt: str) -> dict:
    checker = CHECKERS[instruction_id]
    params = [p for p in inspect.signature(checker).parameters if p != "response"]
    given = {k: v for k, v in (kwargs or {}).items() if v is not None}
    if "prompt_to_repeat" in params and "prompt_to_repeat" not in given and prompt:
        given["prompt_to_repeat"] = prompt
    unknown = sorted(set(given) - set(params))
    missing = [p for p in params if p not in given]
    if unknown:
        raise InstructionError(f"{instruction_id}: unexpected argument(s) {unknown} (takes {params})")
    if missing:
        raise InstructionError(f"{instruction_id}: missing argument(s) {missing}")
    return given


def check_instruction(instruction_id: str, response: str, kwargs: Mapping[str, Any] | None = None, *,
                      prompt: str = "", loose: bool = False) -> bool:
    """Does `response` follow the instruction? Raises InstructionError for an unknown id or bad arguments."""
    if instruction_id not in CHECKERS:
        raise InstructionError(f"unknown instruction id {instruction_id!r} "
                               f"(supported: {', '.join(SUPPORTED_INSTRUCTIONS)})")
    arguments = _arguments(instruction_id, kwargs, prompt)
    checker = CHECKERS[instruction_id]
    if not response or not response.strip():
        return False
    candidates = loose_variants(response) if loose else [response]
    return any(c.strip() and checker(c, **arguments) for c in candidates)


def evaluate_ifeval(response: str, instruction_id_list: Sequence[str],
                    kwargs_list: Sequence[Mapping[str, Any] | None] | None = None, *, prompt: str = "") -> IFEvalResult:
    """Check every instruction of one IFEval prompt, strict and loose."""
    kwargs_list = list(kwargs_list) if kwargs_list is not None else [{}] * len(instruction_id_list)
    if len(kwargs_list) != len(instruction_id_list):
        raise InstructionError(f"{len(instruction_id_list)} instruction ids but {len(kwargs_list)} kwargs entries")
    strict = tuple(check_instruction(i, response, k, prompt=prompt) for i, k in zip(instruction_id_list, kwargs_list))
    loose = tuple(s or check_instruction(i, response, k, prompt=prompt, loose=True)
                  for s, i, k in zip(strict, instruction_id_list, kwargs_list))
    return IFEvalResult(tuple(instruction_id_list), strict, loose)
