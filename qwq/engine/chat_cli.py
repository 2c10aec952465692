"""`qwq chat`: an interactive terminal chat that streams the answer and shows the thinking dimmed.

Commands: /reset (forget the conversation), /think (toggle: stream the thinking, or collapse it to a one-line
counter), /last (print the last turn's thinking in full), /system TEXT (set the system message and reset),
/exit (or Ctrl-D). The conversation goes through the model's chat template each turn; for QwQ the template keeps
only the answer of earlier assistant turns and opens `<think>` for the new one.
"""

from __future__ import annotations

import argparse
import sys

from qwq.engine.cli_common import add_model_args, add_sampling_args, load_engine, sampling_params

HELP = "commands: /reset  /think (show/collapse thinking)  /last (show last thinking)  /system TEXT  /exit"


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--system", default=None, help="system message")
    parser.add_argument("--hide-thinking", action="store_true", help="collapse the thinking to a token counter")
    add_sampling_args(parser, max_new_tokens=4096)
    add_model_args(parser)


class TurnPrinter:
    """Routes a stream of text deltas to the console: reasoning dimmed (or counted), the answer plain."""

    def __init__(self, console, show_thinking: bool, starts_in_reasoning: bool) -> None:
        from qwq.tokenizer import ReasoningStreamParser

        self.console, self.show_thinking = console, show_thinking
        self.parser = ReasoningStreamParser(starts_in_reasoning=starts_in_reasoning)
        self.thinking_chars = 0
        self._in_thinking_display = False

    def _reasoning(self, text: str) -> None:
        self.thinking_chars += len(text)
        if self.show_thinking:
            if not self._in_thinking_display:
                self.console.print("[dim italic]thinking:[/] ", end="")
                self._in_thinking_display = True
            self.console.print(text, style="dim", end="", markup=False, highlight=False)
        else:
            self.console.print(f"\r[dim]thinking... {self.thinking_chars} chars[/]", end="")

    def _content(self, text: str) -> None:
        if self._in_thinking_display or (not self.show_thinking and self.thinking_chars):
            self.console.print("\n" if self.show_thinking else "\r" + " " * 40 + "\r", end="")
            self._in_thinking_display = False
        self.console.print(text, end="", markup=False, highlight=False)

    def feed(self, delta: str) -> None:
        for part in self.parser.feed(delta):
            (self._reasoning if part.kind == "reasoning" else self._content)(part.text)

    def finish(self) -> None:
        for part in self.parser.finish():
            (self._reasoning if part.kind == "reasoning" else self._content)(part.text)
        self.console.print()


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    from qwq.tokenizer import prompt_starts_in_reasoning
    from qwq.utils.errors import UsageError

    console = Console(highlight=False)
    from qwq.engine.controls.args import self_consistency_from_args

    params = sampling_params(args)
    voting = self_consistency_from_args(args)
    engine = load_engine(args, max_batch_size=voting.n if voting else 1)
    if engine.chat_template is None:
        raise UsageError(f"{args.model}: the model has no chat template (use `qwq generate` for raw prompts)")
    system = args.system
    history: list[dict] = []
    show_thinking = not args.hide_thinking
    last_thinking = ""
    console.print(f"[bold]qwq chat[/] with {args.model} ({args.quant}). {HELP}")
    while True:
        try:
            line = console.input("[bold green]you>[/] ")
        except EOFError:
            console.print()
            return 0
        except KeyboardInterrupt:
            console.print()
            return 0
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            command, _, rest = text.partition(" ")
            if command in ("/exit", "/quit"):
                return 0
            if command == "/reset":
                history.clear()
                console.print("[dim](conversation cleared)[/]")
            elif command == "/think":
                show_thinking = not show_thinking
                console.print(f"[dim](thinking {'shown' if show_thinking else 'collapsed'})[/]")
            elif command == "/last":
                console.print(last_thinking or "(no thinking in the last turn)", style="dim", markup=False)
            elif command == "/system":
                system, history = (rest.strip() or None), []
                console.print("[dim](system message set, conversation cleared)[/]")
            else:
                console.print(f"[red]unknown command {command}[/] ({HELP})")
            continue
        history.append({"role": "user", "content": text})
        messages = ([{"role": "system", "content": system}] if system else []) + history
        prompt = engine.render_chat(messages)
        printer = TurnPrinter(console, show_thinking,
                              prompt_starts_in_reasoning(engine.tokenizer.decode(prompt[-64:])))
        console.print("[bold blue]qwq>[/] ", end="")
        if voting is not None:  # n samples, the majority answer's most confident sample is shown
            from qwq.engine.self_consistency import self_consistency

            vote = self_consistency(engine, prompt, params, voting)
            printer.feed(vote.texts.get(vote.winner_index, "") if vote.winner_index is not None else "")
            printer.finish()
            console.print(f"[dim](self-consistency: {vote.table[0]['votes'] if vote.table else 0} of "
                          f"{len(vote.ballots)} votes for {vote.answer})[/]")
        else:
            stream = engine.stream(prompt, params)
            try:
                for event in stream:
                    printer.feed(event.text_delta)
            except KeyboardInterrupt:
                stream.close()  # aborts the request and frees its cache
                console.print("\n[dim](interrupted)[/]")
            printer.finish()
        last_thinking = printer.parser.reasoning
        answer = printer.parser.content
        full = f"<think>\n{last_thinking}\n</think>\n\n{answer}" if last_thinking else answer
        history.append({"role": "assistant", "content": full})
        sys.stdout.flush()
