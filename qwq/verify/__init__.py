"""Verifiers and rewards, shared by RL (rewards) and eval (scores). Torch-free.

Math checks run sympy in a killable subprocess pool (pool.py); everything else is plain string work. See
registry.py for the reward calling convention and rewards.py for the built-in rewards.
"""

from qwq.verify.choice import ChoiceResult, verify_choice, verify_choice_batch
from qwq.verify.extract import (AnswerRegion, Extraction, answer_region, extract_choice, extract_math_answer,
                                find_boxed, gold_answer, gsm8k_answer)
from qwq.verify.ifeval import SUPPORTED_INSTRUCTIONS, IFEvalResult, check_instruction, evaluate_ifeval
from qwq.verify.math import MathResult, compare_math_answers, verify_math, verify_math_batch
from qwq.verify.registry import (CombinedReward, RewardError, build_reward, register_reward, registered_rewards,
                                 resolve_reward)
from qwq.verify.rules import (RuleResult, check_format, language_consistency, ngram_repetition, overlong_penalty,
                              script_share)

__all__ = [
    "AnswerRegion", "ChoiceResult", "CombinedReward", "Extraction", "IFEvalResult", "MathResult", "RewardError",
    "RuleResult", "SUPPORTED_INSTRUCTIONS", "answer_region", "build_reward", "check_format", "check_instruction",
    "compare_math_answers", "evaluate_ifeval", "extract_choice", "extract_math_answer", "find_boxed", "gold_answer",
    "gsm8k_answer", "language_consistency", "ngram_repetition", "overlong_penalty", "register_reward",
    "registered_rewards", "resolve_reward", "script_share", "verify_choice", "verify_choice_batch", "verify_math",
    "verify_math_batch",
]
