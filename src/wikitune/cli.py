"""The `wikitune` command line: a thin layer over each stage's `run_*` function.

    wikitune extract demo --out corpus/demo --root 日本のアニメ作品
    wikitune corpus stats corpus/demo --expect titles.txt

Every command turns bad input into a one-line `error: ...` on stderr and exit status 2.
Commands of later stages (crawl, qa, cpt, sft, eval, ...) appear here as they are built.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from wikitune import __version__
from wikitune.errors import WikituneError

app = typer.Typer(
    name="wikitune",
    help="Turn a Wikipedia category tree into a domain-adapted LLM, and measure what it learned.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
corpus_app = typer.Typer(help="Inspect a corpus directory.", no_args_is_help=True)
app.add_typer(corpus_app, name="corpus")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"wikitune {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress at INFO level.")] = False,
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = None,
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s", stream=sys.stderr)


@app.command()
def extract(
    dump: Annotated[str, typer.Argument(help="pages-articles XML dump (.xml, .bz2, multistream, .gz) or `demo`.")],
    out: Annotated[Path, typer.Option("--out", help="Corpus directory to write.")],
    root: Annotated[list[str], typer.Option("--root", help="Root category (repeatable); none = every article.")] = [],
    depth: Annotated[Optional[int], typer.Option("--depth", help="Most sub-category steps below a root (root members: 0).")] = None,
    exclude: Annotated[list[str], typer.Option("--exclude", help="Regex of categories not to enter (repeatable).")] = [],
    categorylinks: Annotated[Optional[Path], typer.Option("--categorylinks", help="SQL dump of categorylinks.")] = None,
    linktarget: Annotated[Optional[Path], typer.Option("--linktarget", help="SQL dump of linktarget (2025 schema).")] = None,
    page: Annotated[Optional[Path], typer.Option("--page", help="SQL dump of page.")] = None,
    workers: Annotated[int, typer.Option("--workers", help="Conversion processes; 0 = one per core.")] = 0,
) -> None:
    """Build a corpus directory from a Wikipedia XML dump, offline."""
    from wikitune.corpus.extract import ExtractConfig, run_extract

    cfg = ExtractConfig(
        dump=dump, out=out, roots=list(root), depth=depth, exclude=list(exclude),
        categorylinks=categorylinks, linktarget=linktarget, page=page, workers=workers,
    )
    result = run_extract(cfg)
    counts = result.manifest["counts"]
    skipped = ", ".join(f"{k} {v}" for k, v in counts["skipped"].items()) or "none"
    typer.echo(
        f"{result.out}: {counts['articles']} articles, {counts['characters']} characters, "
        f"{counts['categories']} categories (skipped: {skipped})"
        + (" — the dump was truncated, see the warning above" if counts["truncated"] else "")
    )


@corpus_app.command("stats")
def corpus_stats(
    corpus: Annotated[Path, typer.Argument(help="Corpus directory written by extract or crawl.")],
    expect: Annotated[Optional[Path], typer.Option("--expect", help="Text file of titles you expect, one per line.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
    top: Annotated[int, typer.Option("--top", help="How many of the largest categories to list.")] = 10,
) -> None:
    """Counts of a corpus, and with --expect which expected titles are missing and why."""
    from wikitune.corpus.stats import corpus_stats as compute, format_stats

    stats = compute(corpus, expect=expect, top=top)
    if json_out:
        import json

        typer.echo(json.dumps(stats, ensure_ascii=False, indent=2))
    else:
        typer.echo(format_stats(stats))


def main() -> None:
    """Console entry point: known errors become one line on stderr and exit status 2."""
    try:
        app()  # standalone: usage errors are printed by Typer with status 2
    except WikituneError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
