"""``assistant chat "question"``: answer in-process, streaming to the terminal, then the
plan and the sources the answer came from."""
from __future__ import annotations

import argparse
import sys
from typing import Optional

from assistant.commands.common import (QUESTION_HELP, add_settings_flags, cli_errors, read_question,
                                       settings_from_args)
from assistant.models.chat_format import ChatMessage
from assistant.models.generation import GenerationStats, SamplingParams, TextPiece
from assistant.knowledge.rag_prompt import Source
from assistant.orchestrator import AskRequest, Assistant
from assistant.router.plan import STRATEGIES, Strategy


def format_source(source: Source) -> str:
    """``path:start-end  heading  score`` — the same shape as ``assistant search``."""
    return f"{source.path}:{source.start_line}-{source.end_line}  {source.heading or ''}  {source.score:.3f}"


@cli_errors
def main(argv: Optional[list[str]] = None) -> int:
    """Ask one question (or read it from stdin with '-')."""
    parser = argparse.ArgumentParser(prog="assistant chat", description=__doc__)
    parser.add_argument("question", help=QUESTION_HELP)
    parser.add_argument("--system", default=None, help="a system message")
    parser.add_argument("--strategy", default="auto", choices=STRATEGIES)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=SamplingParams.temperature)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--quiet", action="store_true", help="print only the answer")
    add_settings_flags(parser, ["model", "profile", "home", "n_ctx", "n_threads"])
    args = parser.parse_args(argv)
    question = read_question(parser, args.question)
    settings = settings_from_args(args)
    assistant = Assistant.load(settings)
    messages = ([ChatMessage("system", args.system)] if args.system else []) + [ChatMessage("user", question)]
    request = AskRequest(messages=messages, strategy=Strategy(args.strategy),
                         sampling=SamplingParams(max_tokens=args.max_tokens, temperature=args.temperature,
                                                 seed=args.seed))
    stats: Optional[GenerationStats] = None
    with assistant.ask(request) as answer:
        for event in answer.events:
            if isinstance(event, TextPiece):
                sys.stdout.write(event.text)
                sys.stdout.flush()
            else:
                stats = event
    print()
    if not args.quiet:
        print_plan_and_sources(answer.plan, answer.sources, stats)
    return 0


def print_plan_and_sources(plan, sources: list[Source], stats: Optional[GenerationStats]) -> None:
    """How the answer was made, on stderr (stdout holds only the answer)."""
    print(f"\n[plan] strategy={plan.strategy} difficulty={plan.difficulty} model={plan.model} "
          f"k={plan.k} backend={plan.backend}: {'; '.join(plan.reasons)}", file=sys.stderr)
    if sources:
        print("[sources]", file=sys.stderr)
        for index, source in enumerate(sources, start=1):
            print(f"  [{index}] {format_source(source)}", file=sys.stderr)
    if stats:
        print(f"[{stats.completion_tokens} tokens, {stats.decode_tokens_per_s:.1f} tok/s, "
              f"first token {stats.time_to_first_token_s * 1000:.0f} ms]", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
