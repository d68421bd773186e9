"""The straight line every command runs: records in -> a generator enriches each -> records out.

Input problems (a malformed line, a field missing after mapping) either stop the run with nothing
left under the output name (`--on-error fail`) or go to the rejects file with their line and reason
(`--on-error skip`). Either way each input record ends in the output or the rejects.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Iterator

from rubricate.errors import InputError, UsageError
from rubricate.formats.mapping import Mapper
from rubricate.formats.read import Item, read_items
from rubricate.formats.write import Sink

Transform = Callable[[Iterable[dict]], Iterable[dict]]


@dataclass
class Options:
    input: str | None = None
    output: str | None = None
    output_format: str | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    preset: str | None = None
    split: str | None = None
    on_error: str = "fail"
    rejects: str | None = None

    def rejects_path(self) -> str | None:
        if self.rejects is not None:
            return self.rejects
        if self.on_error == "skip":
            if self.output in (None, "-"):
                raise UsageError("--on-error skip needs --rejects FILE when writing to stdout",
                                 hint="Every input record must end in the output or the rejects.")
            return f"{self.output}.rejects.jsonl"
        return None


@dataclass
class Summary:
    read: int = 0
    written: int = 0
    rejected: int = 0
    rejects_path: str | None = None


def read_records(opts: Options, summary: Summary, rejects: Sink | None,
                 requires: tuple[str, ...] = ()) -> Iterator[dict]:
    """Mapped, validated records; bad ones go to `rejects` or stop the run."""
    mapper = Mapper(opts.mapping, opts.preset)
    for item in read_items(opts.input, split=opts.split):
        summary.read += 1
        try:
            if item.error is not None:
                raise InputError(item.error, where=item.where)
            record = mapper(item.value, item.where)
            for name in requires:
                if record.get(name) in (None, ""):
                    raise InputError(f"field {name}: required by this command but missing after mapping",
                                     where=item.where, field=name, record_id=record.get("id"),
                                     hint="Map it with --map TARGET=SOURCE or choose a --preset.")
        except InputError as exc:
            if rejects is None:
                raise
            summary.rejected += 1
            rejects.write(_reject_row(item, exc))
            continue
        yield record


def _reject_row(item: Item, exc: InputError) -> dict:
    row = {"source": item.source, "line": item.line, "index": item.index, "reason": exc.reason,
           "field": exc.field, "id": exc.record_id}
    if item.raw is not None:
        row["raw"] = item.raw
    else:
        row["record"] = item.value
    return row


def run(opts: Options, transform: Transform, *, requires: tuple[str, ...] = (),
        observe: Callable[[dict], None] | None = None) -> Summary:
    """Read, transform, write. Outputs are committed only when every record went through."""
    summary = Summary(rejects_path=opts.rejects_path())
    sink = Sink(opts.output, fmt=opts.output_format)
    rejects = Sink(summary.rejects_path) if summary.rejects_path else None
    try:
        for record in transform(read_records(opts, summary, rejects, requires)):
            sink.write(record)
            if observe is not None:
                observe(record)
        summary.written = sink.count
        sink.commit()
        if rejects is not None:
            rejects.commit()
    except BaseException:
        sink.abort()
        if rejects is not None:
            rejects.abort()
        raise
    return summary


def consume(opts: Options, fn: Callable[[dict], None]) -> Summary:
    """Read every record into `fn` (a summary, an evaluation) with no output but the rejects."""
    summary = Summary(rejects_path=opts.rejects_path())
    rejects = Sink(summary.rejects_path) if summary.rejects_path else None
    try:
        for record in read_records(opts, summary, rejects):
            fn(record)
        if rejects is not None:
            rejects.commit()
    except BaseException:
        if rejects is not None:
            rejects.abort()
        raise
    return summary


def each(fn: Callable[[dict], dict]) -> Transform:
    """A transform from a per-record function, for generators that need no model."""
    def transform(records: Iterable[dict]) -> Iterator[dict]:
        for record in records:
            yield fn(record)
    return transform


def each_async(fn: Callable[[dict, Any], Awaitable[dict | list[dict]]], *, window: int,
               setup: Callable[[], Awaitable[Any]], teardown: Callable[[Any], Awaitable[None]]) -> Transform:
    """A transform that runs `fn(record, state)` for many records at once and yields the results in
    input order. At most `window` records are in flight, so memory stays bounded whatever finishes
    first; `fn` may return several records for one (rollouts). `setup` runs inside the event loop
    (clients bind to it) and its result is handed to every call, then to `teardown`.
    """
    def transform(records: Iterable[dict]) -> Iterator[dict]:
        loop = asyncio.new_event_loop()
        pending: deque[asyncio.Task] = deque()
        state = None
        try:
            state = loop.run_until_complete(setup())
            source = iter(records)
            exhausted = False
            while True:
                while not exhausted and len(pending) < window:
                    record = next(source, None)
                    if record is None:
                        exhausted = True
                    else:
                        pending.append(loop.create_task(fn(record, state)))
                if not pending:
                    break
                result = loop.run_until_complete(pending.popleft())
                if isinstance(result, list):
                    yield from result
                else:
                    yield result
        finally:
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            if state is not None:
                loop.run_until_complete(teardown(state))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
    return transform
