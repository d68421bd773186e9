from __future__ import annotations

import json
from typing import Annotated

import typer

from rubricate.cli import options as o


def stats(
    input: o.Input = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON for scripts.")] = False,
    mapping: o.Map = None, preset: o.Preset = None, split: o.Split = None,
    on_error: o.OnErrorOpt = o.OnError.fail, rejects: o.Rejects = None, debug: o.Debug = False,
) -> None:
    """Summarise records: fields present, steps per trace, feedback kinds, outcome accuracy, errors."""
    from rubricate.pipeline import consume
    from rubricate.stats import Stats

    collected = Stats()
    summary = consume(o.io_options(input, None, None, mapping, preset, split, on_error, rejects), collected.add)
    collected.rejected = summary.rejected
    result = collected.summary()
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        _render(result)


def _render(s: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="rubricate stats", show_header=True, header_style="bold")
    table.add_column("", style="bold")
    table.add_column("value", justify="right")
    table.add_column("", style="dim")
    n = s["records"] or 1
    table.add_row("records", str(s["records"]), f"{s['rejected']} rejected" if s["rejected"] else "")
    for name, count in s["fields"].items():
        table.add_row(f"  {name}", str(count), f"{100 * count / n:.1f}%")
    q = s["steps_per_trace"]
    if q["n"]:
        table.add_row("steps per trace", f"{q['mean']}",
                      f"min {q['min']}, median {q['median']}, max {q['max']} over {q['n']} traces")
    for kind, count in s["feedback"].items():
        errs = s["errors"].get(kind, 0)
        table.add_row(f"feedback.{kind}", str(count), f"{errs} with error" if errs else "")
    if "outcome" in s:
        out = s["outcome"]
        acc = "n/a" if out["accuracy"] is None else f"{100 * out['accuracy']:.1f}%"
        table.add_row("outcome accuracy", acc,
                      f"{out['correct']} correct, {out['incorrect']} incorrect, {out['undecided']} undecided")
        if out["undecided_reasons"]:
            table.add_row("  undecided", "", ", ".join(f"{k}: {v}" for k, v in out["undecided_reasons"].items()))
        table.add_row("  answers by", "", ", ".join(f"{k}: {v}" for k, v in out["methods"].items()))
    if "critique" in s:
        c, v = s["critique"], s["critique"]["verdicts"]
        table.add_row("critiques", str(c["critiques"]), f"{v['incorrect']} incorrect, {v['correct']} correct, "
                      f"{v['error']} with error; {c['with_directive']} with a directive")
    if "refinement" in s:
        r = s["refinement"]
        table.add_row("refinements", str(r["refined"]),
                      f"{r['fixed']['fixed']} of {r['fixed']['of_incorrect']} failed responses fixed")
    if "rubric" in s:
        r = s["rubric"]
        g = r["gates"]
        mean = "n/a" if r["score_mean"] is None else f"{r['score_mean']:.3f}"
        table.add_row("rubric gates", f"{100 * r['accept_rate']:.1f}%",
                      f"{g['accept']} accepted, {g['reject']} rejected, {g['undecided']} undecided; mean score {mean}")
        if "groups" in r:
            rg = r["groups"]
            table.add_row("  groups", str(rg["groups"]), f"{rg['groups_keeping_an_accepted_rollout']} keep an accepted "
                          f"rollout, {rg['groups_all_rejected']} all rejected")
    if "contamination" in s:
        c = s["contamination"]
        rate = "n/a" if c["exact_match_rate"] is None else f"{100 * c['exact_match_rate']:.1f}%"
        table.add_row("contamination", rate, f"{c['exact_match']} of {c['compared']} completed exactly; mean ROUGE-L "
                      f"{c['rouge_l_mean']}; truncated problem answered right {c['answer_correct']} of {c['answered']}")
    for pair, a in s.get("step_label_agreement", {}).items():
        steps = "n/a" if a["step_agreement"] is None else f"{100 * a['step_agreement']:.1f}%"
        first = "n/a" if a["first_error_agreement"] is None else f"{100 * a['first_error_agreement']:.1f}%"
        table.add_row(f"labels {pair}", steps, f"steps agree ({a['steps_compared']} compared); first error "
                      f"agrees {first} ({a['records']} records)")
    if "groups" in s:
        g = s["groups"]
        table.add_row("groups", str(g["groups"]),
                      f"{g['groups_with_a_correct_rollout']} with a correct rollout, "
                      f"{g['groups_all_incorrect']} all incorrect")
    if s["meta_keys"]:
        table.add_row("meta keys", str(len(s["meta_keys"])), ", ".join(list(s["meta_keys"])[:8]))
    console.print(table)
