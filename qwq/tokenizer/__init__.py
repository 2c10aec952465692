"""Tokenizer, chat template, reasoning and tool-call parsing. Torch-free (a test asserts it)."""

from qwq.tokenizer.bytelevel import AddedToken
from qwq.tokenizer.chat import QWQ_TEMPLATE, ChatTemplate, validate_messages
from qwq.tokenizer.reasoning import (ReasoningDelta, ReasoningSplit, ReasoningStreamParser, prompt_starts_in_reasoning,
                                     split_reasoning)
from qwq.tokenizer.tokenizer import QWQ_ADDED_TOKENS, IncrementalDecoder, Tokenizer, qwq_tokenizer
from qwq.tokenizer.toolcall import (ContentDelta, ToolCall, ToolCallDone, ToolCallError, ToolCallFailed,
                                    ToolCallParse, ToolCallStreamParser, format_tool_call, parse_tool_calls)
from qwq.tokenizer.training import train_bpe

__all__ = [
    "AddedToken", "QWQ_TEMPLATE", "ChatTemplate", "validate_messages", "ReasoningDelta", "ReasoningSplit",
    "ReasoningStreamParser", "prompt_starts_in_reasoning", "split_reasoning", "QWQ_ADDED_TOKENS", "IncrementalDecoder", "Tokenizer",
    "qwq_tokenizer", "ContentDelta", "ToolCall", "ToolCallDone", "ToolCallError", "ToolCallFailed", "ToolCallParse",
    "ToolCallStreamParser", "format_tool_call", "parse_tool_calls", "train_bpe",
]
