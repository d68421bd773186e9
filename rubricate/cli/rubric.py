"""`rubric` (= `rubric score`) and `rubric author`: rubric verdicts as gates, and rubrics per record.

`rubricate rubric [IN] --rubric FILE` is `rubricate rubric score [IN] --rubric FILE`: the group
below runs `score` whenever its first argument is not a subcommand's name, so both spellings work.
(An input file literally named `author` or `score` needs `./author`, or the explicit `score`.)
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from rubricate.cli import model_options as m
from rubricate.cli import options as o


class _ScoreByDefault(TyperGroup):
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = ["score", *args]
        return super().parse_args(ctx, args)


rubric_app = typer.Typer(
    name="rubric", cls=_ScoreByDefault, add_completion=False, no_args_is_help=False,
    help="Check responses against a rubric (`rubricate rubric [IN] --rubric FILE` runs `score`), or write "
         "a rubric for each record (`rubricate rubric author`).")


@rubric_app.command("score")
@o.with_io
@m.with_model(required=False)
def score(
    rubric: Annotated[Optional[str], typer.Option(
        "--rubric", "-r", help="Rubric file (YAML or JSON, schemas/rubric_file.schema.json) for every record; "
                               "without it each record's own `rubric` field is used.", show_default=False)] = None,
    per_item: Annotated[bool, typer.Option(
        "--per-item", help="One judge call per `llm` item instead of one call for all of a record's items.")] = False,
    implicit: Annotated[bool, typer.Option(
        "--implicit", help="Ask the judge for one 1-10 rating with the whole rubric in view (RaR's implicit "
                           "aggregation): score = (rating - 1) / 9.")] = False,
    group_by: Annotated[Optional[str], typer.Option(
        "--group-by", help="Summarise gates per group of this field (e.g. group): rollouts, accepted, pass rate, "
                           "whether the group keeps an accepted rollout; on stderr, and in --groups FILE.",
        show_default=False)] = None,
    groups: Annotated[Optional[str], typer.Option(
        "--groups", help="With --group-by: write one JSONL row per group here.", show_default=False)] = None,
    temperature: m.Temperature = 0.0, top_p: m.TopP = None, max_tokens: m.MaxTokens = None, seed: m.Seed = None,
    *, io: o.Options, engine: m.ModelSettings,
) -> None:
    """Check each response against a rubric: feedback.rubric (items met, score, gate)."""
    from rubricate.errors import EXIT_FAILURE, UsageError
    from rubricate.generators import rubric as gen
    from rubricate.rubrics import GroupTally, group_key, load_rubric

    if groups and not group_by:
        raise UsageError("--groups FILE needs --group-by FIELD")
    if per_item and implicit:
        raise UsageError("--per-item and --implicit exclude each other",
                         hint="--implicit asks one overall rating; --per-item one verdict per item.")
    given = load_rubric(rubric) if rubric is not None else None
    model = engine.model  # the judge for `llm` items; not needed when every item is checked without a model
    if model is None:
        hint = "For example --model openai/gpt-4o-mini, or --model local."
        if implicit or per_item:
            raise UsageError(f"{'--implicit' if implicit else '--per-item'} needs a judge: give --model", hint=hint)
        if given is not None and given.judged:
            names = ", ".join(item.id for item in given.judged)
            raise UsageError(f"{rubric}: items {names} are decided by a judge (check: llm): give --model", hint=hint)
    opts = io
    requires = gen.REQUIRES + (() if given is not None else ("rubric",))
    tally, by_group = _Gates(), GroupTally()

    def seen(record: dict) -> bool:
        entry = record["feedback"]["rubric"]
        tally.add(entry)
        if group_by:
            by_group.add(group_key(record, group_by), entry.get("gate"))
        return "error" in entry

    code = 0
    try:
        if model is None:
            from rubricate.pipeline import each, run

            failed = 0
            with o.progress("rubric") as tick:
                def observe(record: dict) -> None:
                    nonlocal failed
                    failed += seen(record)
                    if tick is not None:
                        tick(record)

                summary = run(opts, each(lambda r: gen.score_static(r, given)), requires=requires,
                              observe=observe)
            o.report(summary)
            if failed:
                typer.secho(f"rubricate: {failed} of {summary.written} records kept an error "
                            "(see their `error` field)", fg="red", err=True)
                code = EXIT_FAILURE
        else:
            templates = gen.bundled_templates()
            params = m.sampling(temperature, top_p, max_tokens, seed)

            async def fn(record: dict, llm) -> dict:
                return await gen.score_record(record, llm, rubric=given, templates=templates, params=params,
                                              per_item=per_item, implicit=implicit)

            try:
                m.run_model(opts, engine, fn, failed=seen, requires=requires, label="rubric")
            except typer.Exit as exc:
                if exc.exit_code != EXIT_FAILURE:
                    raise
                code = exc.exit_code
    finally:
        tally.report()
    if group_by:
        _report_groups(by_group, group_by, groups)
    if code:
        raise typer.Exit(code)


class _Gates:
    def __init__(self) -> None:
        self.records = 0
        self.gates = {"accept": 0, "reject": 0, None: 0}
        self.scores: list[float] = []

    def add(self, entry: dict) -> None:
        self.records += 1
        self.gates[entry.get("gate")] = self.gates.get(entry.get("gate"), 0) + 1
        if isinstance(entry.get("score"), (int, float)):
            self.scores.append(entry["score"])

    def report(self) -> None:
        if not self.records:
            return
        mean = f", mean score {sum(self.scores) / len(self.scores):.3f}" if self.scores else ""
        typer.secho(f"rubricate: rubric gates: {self.gates['accept']} accepted, {self.gates['reject']} rejected, "
                    f"{self.gates[None]} undecided of {self.records}{mean}", err=True)


def _report_groups(tally: Any, field: str, path: str | None) -> None:
    s = tally.summary()
    if not s["groups"]:
        typer.secho(f"rubricate: no record has a {field!r} to group by", fg="yellow", err=True)
    else:
        typer.secho(f"rubricate: gates by {field}: {s['groups']} groups, {s['groups_keeping_an_accepted_rollout']} "
                    f"keep an accepted rollout, {s['groups_all_rejected']} all rejected; {s['accepted']} of "
                    f"{s['rollouts']} rollouts accepted ({100 * (s['pass_rate'] or 0):.1f}%)", err=True)
    if path:
        from rubricate.formats.write import Sink

        sink = Sink(path, fmt="jsonl")
        try:
            for row in tally.rows():
                sink.write(row)
            sink.commit()
        except BaseException:
            sink.abort()
            raise


@rubric_app.command("author")
@o.with_io
@m.with_model
def author(
    min_items: Annotated[int, typer.Option("--min-items", min=1, help="Fewest criteria a rubric may have.")] = 7,
    max_items: Annotated[int, typer.Option("--max-items", min=1, help="Most criteria a rubric may have.")] = 20,
    template: Annotated[Optional[str], typer.Option(
        "--template", help="Jinja template for the author (default: rubricate's rubric_author).",
        show_default=False)] = None,
    temperature: m.Temperature = 0.0, top_p: m.TopP = None, max_tokens: m.MaxTokens = None, seed: m.Seed = None,
    *, io: o.Options, engine: m.ModelSettings,
) -> None:
    """Write a rubric for each record into its `rubric` field, from its problem and reference (RaR's recipe)."""
    from rubricate.errors import UsageError
    from rubricate.generators import rubric_author as gen
    from rubricate.prompts import bundled, load

    if min_items > max_items:
        raise UsageError(f"--min-items {min_items} is above --max-items {max_items}")
    tmpl = load(template, "rubric_author")
    repair = bundled("rubric_author_repair")
    params = m.sampling(temperature, top_p, max_tokens, seed)

    async def fn(record: dict, llm) -> dict:
        return await gen.author_record(record, llm, template=tmpl, repair=repair, params=params,
                                       min_items=min_items, max_items=max_items)

    m.run_model(io, engine, fn, failed=lambda r: "error" in r["rubric"], requires=gen.REQUIRES,
                label="rubric author")
