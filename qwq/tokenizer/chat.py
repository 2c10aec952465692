"""Chat templates: render a checkpoint's own Jinja template exactly as transformers' `apply_chat_template` does.

Templates come from model files, so they are untrusted code: they run in jinja2's ImmutableSandboxedEnvironment
with transformers' settings (trim_blocks, lstrip_blocks, loop controls), its helpers (`tojson` without HTML
escaping and with ensure_ascii=False, `raise_exception`, `strftime_now`) and only plain JSON data in the context.

Before rendering, messages are checked and normalized (errors name the message index and field):
- keys whose value is None are dropped (OpenAI objects send `tool_calls: null`), as transformers does;
- content must be a string; a list of text parts (OpenAI's content-part form) is joined into one string;
  an assistant message with tool calls and no content gets content "" (the QwQ template splits it on `</think>`);
- tool calls are `{"function": {"name", "arguments"}}` or `{"name", "arguments"}`; arguments given as a JSON
  string (OpenAI wire format) are parsed into an object, because templates serialize them with `tojson`.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping, Sequence

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from qwq.utils.errors import TokenizerError

QWQ_TEMPLATE: str = resources.files("qwq.tokenizer").joinpath("templates/qwq.jinja").read_text(encoding="utf-8")


class _GenerationTag(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}` marks assistant text for training masks; rendering keeps the body."""

    tags = {"generation"}

    def parse(self, parser: Any) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render_body"), [], [], body).set_lineno(lineno)

    def _render_body(self, caller: Any) -> str:
        return caller()


class _Namespace(jinja2.utils.Namespace):
    """jinja's `namespace()`, refusing underscore-prefixed attributes (a route to interpreter internals)."""

    def __init__(*args: Any, **kwargs: Any) -> None:  # same self-less signature trick as jinja's Namespace
        self, rest = args[0], args[1:]
        for name in dict(*rest, **kwargs):
            _Namespace._check(name)
        jinja2.utils.Namespace.__init__(self, *rest, **kwargs)

    def __setitem__(self, name: str, value: Any) -> None:
        _Namespace._check(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check(name: Any) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(f"namespace attribute {name!r} is not allowed")


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, separators: Any = None,
            sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@lru_cache(maxsize=1)
def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[_GenerationTag, jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["namespace"] = _Namespace
    return env


@lru_cache(maxsize=32)
def _compile(source: str) -> jinja2.Template:
    return _environment().from_string(source)


def _template_line(exc: BaseException) -> int | None:
    """Line of the template being rendered when `exc` was raised (jinja maps its frames to '<template>')."""
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return getattr(exc, "lineno", None) or line


class ChatTemplate:
    """A compiled chat template. `special_tokens` (bos_token, eos_token, ...) are visible to the template, as in
    transformers, where the tokenizer's special tokens are passed to every render."""

    def __init__(self, source: str, special_tokens: Mapping[str, str | None] | None = None,
                 name: str = "chat template") -> None:
        if not isinstance(source, str) or not source.strip():
            raise TokenizerError(f"{name}: the template is empty")
        self.source = source
        self.name = name
        self.special_tokens = dict(special_tokens or {})
        try:
            self._template = _compile(source)
        except jinja2.TemplateSyntaxError as exc:
            raise TokenizerError(f"{name}: syntax error at line {exc.lineno}: {exc.message}") from exc

    @classmethod
    def for_tokenizer(cls, tokenizer: Any, default: str | None = None) -> "ChatTemplate":
        """The tokenizer's own template (or `default`, e.g. QWQ_TEMPLATE for QwQ configs), seeing its special
        tokens."""
        source = tokenizer.chat_template or default
        if source is None:
            raise TokenizerError(f"{tokenizer.source}: this tokenizer has no chat template")
        return cls(source, special_tokens={"eos_token": tokenizer.eos_token, "pad_token": tokenizer.pad_token,
                                           "bos_token": tokenizer.bos_token})

    def render(self, messages: Sequence[Any], tools: Sequence[Any] | None = None, add_generation_prompt: bool = False,
               **kwargs: Any) -> str:
        """The prompt text. Extra keyword arguments become template variables (e.g. enable_thinking)."""
        context = {**self.special_tokens, "documents": None, **_plain(kwargs, "template argument")}
        try:
            return self._template.render(messages=validate_messages(messages), tools=validate_tools(tools),
                                         add_generation_prompt=bool(add_generation_prompt), **context)
        except TokenizerError:
            raise
        except jinja2.TemplateError as exc:
            line = _template_line(exc)
            where = f" (template line {line})" if line else ""
            raise TokenizerError(f"{self.name} failed{where}: {exc}") from exc
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
            line = _template_line(exc)
            where = f" (template line {line})" if line else ""
            raise TokenizerError(f"{self.name} failed{where}: {type(exc).__name__}: {exc}") from exc

    def __repr__(self) -> str:
        return f"ChatTemplate({self.name!r}, {len(self.source)} chars)"


def _as_mapping(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if callable(getattr(value, "model_dump", None)):  # pydantic models, e.g. OpenAI SDK message objects
        return value.model_dump()
    return value


def _plain(value: Any, where: str) -> Any:
    """A copy holding only JSON types: the sandbox then never sees objects with methods of their own."""
    value = _as_mapping(value)
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TokenizerError(f"{where}: keys must be strings, got {key!r}")
            out[str.__str__(key)] = _plain(item, f"{where}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise TokenizerError(f"{where}: a {type(value).__name__} cannot be passed to a chat template")


def _content_text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for k, part in enumerate(content):
            part = _as_mapping(part)
            if not isinstance(part, Mapping) or part.get("type", "text") != "text" or not isinstance(part.get("text"), str):
                raise TokenizerError(f"{where}[{k}]: only text content parts are supported, got {part!r:.80}")
            texts.append(part["text"])
        return "".join(texts)
    raise TokenizerError(f"{where} must be a string, got {type(content).__name__}")


def _tool_calls(calls: Any, where: str) -> list[dict]:
    if not isinstance(calls, (list, tuple)):
        raise TokenizerError(f"{where} must be a list, got {type(calls).__name__}")
    out = []
    for j, call in enumerate(calls):
        here = f"{where}[{j}]"
        call = _as_mapping(call)
        if not isinstance(call, Mapping):
            raise TokenizerError(f"{here} must be an object, got {type(call).__name__}")
        call = {k: v for k, v in call.items() if v is not None}
        nested = "function" in call
        function = _as_mapping(call["function"]) if nested else call
        fwhere = f"{here}.function" if nested else here
        if not isinstance(function, Mapping):
            raise TokenizerError(f"{fwhere} must be an object with 'name' and 'arguments'")
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise TokenizerError(f"{fwhere}.name must be a non-empty string, got {name!r}")
        if "arguments" not in function:
            raise TokenizerError(f"{fwhere}.arguments is missing")
        arguments = function["arguments"]
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError as exc:
                raise TokenizerError(f"{fwhere}.arguments is not valid JSON: {exc.msg} at column {exc.colno}") from None
        if not isinstance(arguments, Mapping):
            raise TokenizerError(f"{fwhere}.arguments must be a JSON object, got {type(arguments).__name__}")
        function = {**function, "arguments": arguments}
        out.append({**call, "function": function} if nested else function)
    return out


def validate_messages(messages: Any) -> list[dict]:
    """Checked, normalized plain-data copies of chat messages (see the module docstring for the rules)."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TokenizerError(f"messages must be a list of message objects, got {type(messages).__name__}")
    if not messages:
        raise TokenizerError("messages is empty")
    out = []
    for i, message in enumerate(messages):
        message = _as_mapping(message)
        if not isinstance(message, Mapping):
            raise TokenizerError(f"messages[{i}] must be an object with 'role' and 'content', "
                                 f"got {type(message).__name__}")
        message = {k: v for k, v in message.items() if v is not None}
        role = message.get("role")
        if role is None:
            raise TokenizerError(f"messages[{i}] has no 'role'")
        if not isinstance(role, str) or not role:
            raise TokenizerError(f"messages[{i}].role must be a non-empty string, got {role!r}")
        if "tool_calls" in message:
            if role != "assistant":
                raise TokenizerError(f"messages[{i}].tool_calls: only assistant messages carry tool calls "
                                     f"(role is {role!r})")
            message["tool_calls"] = _tool_calls(message["tool_calls"], f"messages[{i}].tool_calls")
        if "content" in message:
            message["content"] = _content_text(message["content"], f"messages[{i}].content")
        elif role == "assistant" and message.get("tool_calls"):
            message["content"] = ""
        else:
            raise TokenizerError(f"messages[{i}] ({role}) has no 'content'")
        out.append(_plain(message, f"messages[{i}]"))
    return out


def validate_tools(tools: Any) -> list[dict] | None:
    if tools is None:
        return None
    if isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Sequence):
        raise TokenizerError(f"tools must be a list of tool schemas, got {type(tools).__name__}")
    out = []
    for k, tool in enumerate(tools):
        tool = _as_mapping(tool)
        if not isinstance(tool, Mapping):
            raise TokenizerError(f"tools[{k}] must be an object (a JSON schema), got {type(tool).__name__}")
        out.append(_plain(tool, f"tools[{k}]"))
    return out
