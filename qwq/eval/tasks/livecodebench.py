"""LiveCodeBench v5 (279 problems, 2024-08..2025-02; QwQ reports 63.4 with n=8), prompts from QwQ's eval data.

The test cases are not shipped (they are large and licensed with the problems): give the directory holding the
per-problem JSON files named by each row's `tests.fname` (QwQ's `eval/data/process_data.py` writes them) with
`--lcb-tests DIR` or $QWQ_LCB_TESTS, or put them in `<data dir>/qwq-eval/livecodebench_v5_tests/`. Without them
the task refuses to run and says so.

A test file is `{"input_output": "<JSON of {inputs, outputs[, fn_name]}>"}`; its MD5 over `json.dumps(data)` must
equal the row's `tests.md5`. With `fn_name` (LeetCode) every input is one JSON value per line (the arguments) and
the output a JSON value, called as `Solution().<fn_name>(*args)`; otherwise inputs and outputs are stdin/stdout.
Files already in one of qwq.verify.code's test formats are accepted too (without the MD5 check). As in
LiveCodeBench's judge, a header of standard-library imports comes before the program.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

from qwq.eval.tasks.base import EvalItem, TaskError, TaskUnavailable, data_file, read_jsonl, user_turn
from qwq.eval.tasks.code_common import CodeTask

IMPORT_HEADER = "\n".join([
    "import bisect", "import collections", "import copy", "import datetime", "import functools", "import heapq",
    "import itertools", "import math", "import operator", "import random", "import re", "import string",
    "import sys", "from bisect import *", "from collections import *", "from functools import *",
    "from heapq import *", "from itertools import *", "from math import *", "from typing import *",
])
DEFAULT_TESTS_SUBDIR = "qwq-eval/livecodebench_v5_tests"


def _md5(data) -> str:
    return hashlib.md5(json.dumps(data).encode("utf-8")).hexdigest()


def parse_lcb_tests(data, source: str):
    """A LiveCodeBench test file (already parsed JSON) -> a qwq.verify.code test spec."""
    from qwq.verify.code import parse_test_spec
    from qwq.utils.errors import UsageError

    if isinstance(data, dict) and "input_output" in data:
        io = data["input_output"]
        try:
            io = json.loads(io) if isinstance(io, str) else io
            inputs, outputs = list(io["inputs"]), list(io["outputs"])
        except (ValueError, KeyError, TypeError):
            raise TaskError(f"{source}: input_output must be JSON with 'inputs' and 'outputs' lists") from None
        if len(inputs) != len(outputs) or not inputs:
            raise TaskError(f"{source}: {len(inputs)} inputs for {len(outputs)} outputs")
        if io.get("fn_name"):
            cases = []
            for number, (given, expected) in enumerate(zip(inputs, outputs)):
                try:
                    args = [json.loads(line) for line in str(given).split("\n") if line.strip()]
                    cases.append({"args": args, "expected": json.loads(expected) if isinstance(expected, str)
                                  else expected})
                except ValueError:
                    raise TaskError(f"{source}: case {number}: arguments and output must be JSON values") from None
            return {"entry_point": f"Solution.{io['fn_name']}", "cases": cases}
        return {"inputs": [str(i) for i in inputs], "outputs": [str(o) for o in outputs]}
    try:
        parse_test_spec(data)
    except UsageError as exc:
        raise TaskError(f"{source}: not a LiveCodeBench test file ({exc})") from None
    return data


class LiveCodeBenchTask(CodeTask):
    name = "livecodebench"
    default_n = 8
    description = "LiveCodeBench v5 (279 problems 2024-08..2025-02; test cases supplied by the user)"
    required_files = ("qwq-eval/livecodebench_v5.jsonl",)

    def __init__(self, data_root: Path | None = None, tests_dir: str | os.PathLike | None = None):
        self.data_root = Path(data_root) if data_root is not None else None
        explicit = tests_dir or os.environ.get("QWQ_LCB_TESTS")
        if explicit:
            self.tests_dir: Path | None = Path(explicit)
        elif self.data_root is not None:
            self.tests_dir = self.data_root / DEFAULT_TESTS_SUBDIR
        else:
            self.tests_dir = None

    def unavailable(self) -> str | None:
        reason = super().unavailable()
        if reason:
            return reason
        if self.tests_dir is None or not self.tests_dir.is_dir():
            where = f" ({self.tests_dir} does not exist)" if self.tests_dir is not None else ""
            return ("its test cases are not shipped with qwq: pass --lcb-tests DIR (or set QWQ_LCB_TESTS) holding the "
                    "per-problem JSON files named by tests.fname in livecodebench_v5.jsonl (QwQ's "
                    f"eval/data/process_data.py downloads them){where}")
        return None

    def load_items(self) -> list[EvalItem]:
        path = data_file(self.data_root, self.required_files[0], self.name)
        items, missing = [], []
        for row in read_jsonl(path, ("question_id", "prompt", "tests"), self.name):
            tests = row["tests"] if isinstance(row["tests"], dict) else {}
            fname = tests.get("fname")
            if not fname or Path(fname).name != fname:
                raise TaskError(f"task {self.name}: {path}: row {row['question_id']} has no valid tests.fname")
            test_path = self.tests_dir / fname  # type: ignore[operator]
            if not test_path.is_file():
                missing.append(fname)
            items.append(EvalItem(str(row["question_id"]), user_turn(str(row["prompt"])),
                                  {"tests_file": str(test_path), "md5": tests.get("md5"),
                                   "contest_date": row.get("contest_date")}))
        if missing:
            raise TaskUnavailable(f"task {self.name}: {len(missing)} of {len(items)} test files are missing from "
                                  f"{self.tests_dir} (first: {missing[0]})")
        return items

    def tests_for(self, items: Sequence[EvalItem]) -> list:
        specs = []
        for item in items:
            source = item.fields["tests_file"]
            try:
                with open(source, encoding="utf-8") as f:
                    data = json.load(f)
            except OSError as exc:
                raise TaskUnavailable(f"task {self.name}: cannot read {source}: {exc.strerror}") from None
            except ValueError as exc:
                raise TaskError(f"task {self.name}: {source} is not JSON: {exc}") from None
            expected = item.fields.get("md5")
            if expected and isinstance(data, dict) and "input_output" in data and _md5(data) != expected:
                raise TaskError(f"task {self.name}: {source}: MD5 {_md5(data)} differs from {expected} in the "
                                "prompt file (a different or damaged test file)")
            specs.append(parse_lcb_tests(data, source))
        return specs

    def program_prefix(self, item: EvalItem) -> str:
        return IMPORT_HEADER
