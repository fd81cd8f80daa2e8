"""``assistant route "question"``: the plan the router would make for a question, and why,
without generating: the difficulty with its reasons, the strategy, model and passage
budget, and the notes the difficulty's search found."""
from __future__ import annotations

import argparse
import json
from typing import Optional

from assistant.commands.common import (QUESTION_HELP, add_settings_flags, cli_errors, read_question,
                                       settings_from_args)
from assistant.commands.search import format_hit
from assistant.models.chat_format import ChatMessage
from assistant.orchestrator import AskRequest, Assistant


@cli_errors
def main(argv: Optional[list[str]] = None) -> int:
    """Print the plan for one question (or read it from stdin with '-')."""
    parser = argparse.ArgumentParser(prog="assistant route", description=__doc__)
    parser.add_argument("question", help=QUESTION_HELP)
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    add_settings_flags(parser, ["model", "profile", "home", "n_ctx", "n_threads"])
    args = parser.parse_args(argv)
    question = read_question(parser, args.question)
    assistant = Assistant.load(settings_from_args(args))
    routed = assistant.route(AskRequest(messages=[ChatMessage("user", question)]))
    passages = routed.passages or []
    if args.json:
        print(json.dumps({"plan": routed.plan.as_dict(), "estimate_ms": round(routed.estimate_s * 1000, 3),
                          "searched": [p.as_source() for p in passages]}, indent=2))
        return 0
    plan = routed.plan
    print(f"difficulty  {plan.difficulty}")
    print(f"strategy    {plan.strategy}  (from {plan.source})")
    print(f"model       {plan.model}" + (f"  adapter {plan.adapter}" if plan.adapter else ""))
    print(f"passages    {plan.k}" + (f" of up to {plan.passage_tokens} tokens" if plan.k else ""))
    print("why:")
    for reason in plan.reasons:
        print(f"  - {reason}")
    if passages:
        print("the difficulty's search found:")
        for passage in passages:
            print(f"  {format_hit(passage)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
