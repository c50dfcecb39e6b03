"""Hadoop Streaming commands for the map/reduce jobs of `chalicelib.domain.mapreduce`.

    python -m chalicelib.jobs.streaming {rollup,index,dedupe} {map,reduce}

map reads archive JSON Lines (plain text, not gzip; blank lines skipped) from stdin and
writes ``key<TAB>json(value)`` lines; reduce reads those lines sorted by key and writes
one JSON row per key. In a shell, sort bytewise so the order is Hadoop's:

    zcat archive/dt=*/hour=*/*.jsonl.gz | python -m chalicelib.jobs.streaming rollup map \\
        | LC_ALL=C sort | python -m chalicelib.jobs.streaming rollup reduce

Any sort keeps equal keys together (keys hold no tabs or control characters), but a
locale's collation may reorder keys, which reduce refuses rather than emit a key twice.
The exact inverted index resolves versions first: chain ``dedupe map | sort | dedupe
reduce`` into ``index map | sort | index reduce`` (two EMR steps).

On EMR: ``hadoop-streaming -files chalicelib.zip -mapper "python -m
chalicelib.jobs.streaming rollup map" -reducer "python -m chalicelib.jobs.streaming
rollup reduce" -input s3://<bucket>/archive/ -output s3://<bucket>/rollups/`` (Hadoop
decompresses the .gz input; the default separator is the first tab, which is ours).
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import TextIO

from chalicelib.domain.mapreduce import JOBS, ArchiveLineError, dumps

PHASES = ("map", "reduce")


class UnsortedInputError(ValueError):
    """reduce met a key smaller than one it already reduced: the input is not sorted."""


def map_lines(job: str, lines: Iterable[str]) -> Iterator[str]:
    """Archive JSON lines -> ``key<TAB>json(value)`` lines (newline-terminated)."""
    mapper = JOBS[job].map
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except json.JSONDecodeError as e:
            raise ArchiveLineError(f"input line {number} is not JSON: {e}") from e
        if not isinstance(line, dict):
            raise ArchiveLineError(f"input line {number} is not a JSON object")
        for key, value in mapper(line):
            yield f"{key}\t{dumps(value)}\n"


def _pairs(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    for number, text in enumerate(lines, 1):
        text = text.rstrip("\r\n")
        if not text:
            continue
        key, tab, value = text.partition("\t")
        if not tab:
            raise ArchiveLineError(f"input line {number} has no tab between key and value")
        yield key, value


def reduce_lines(job: str, lines: Iterable[str]) -> Iterator[str]:
    """Sorted ``key<TAB>json(value)`` lines -> one JSON row per key (newline-terminated)."""
    reducer = JOBS[job].reduce
    previous: str | None = None
    for key, group in itertools.groupby(_pairs(lines), key=lambda pair: pair[0]):
        if previous is not None and key <= previous:
            raise UnsortedInputError(f"key {key[:80]!r} after {previous[:80]!r}: sort the input with LC_ALL=C sort")
        previous = key
        row = reducer(key, (json.loads(value) for _, value in group))
        if row is not None:
            yield dumps(row) + "\n"


def main(argv: Sequence[str] | None = None, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chalicelib.jobs.streaming", description="Hadoop Streaming map/reduce over the archive."
    )
    parser.add_argument("job", choices=sorted(JOBS))
    parser.add_argument("phase", choices=PHASES)
    args = parser.parse_args(argv)
    # UTF-8 whatever the locale: the archive is UTF-8, and Hadoop's Text is too.
    source = stdin or io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", newline="\n")
    sink = stdout or io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="\n")
    run = map_lines if args.phase == "map" else reduce_lines
    try:
        sink.writelines(run(args.job, source))
    except (ArchiveLineError, UnsortedInputError) as e:
        print(f"{parser.prog} {args.job} {args.phase}: {e}", file=sys.stderr)
        return 1
    finally:
        sink.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
