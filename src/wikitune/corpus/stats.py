"""`wikitune corpus stats`: what a corpus holds, and why an expected page is not in it.

    wikitune corpus stats corpus/anime --expect voice_actors.txt

With `--expect`, every expected title missing from the corpus is explained from the page index
the extractor left (`index.sqlite`): not in the source at all, a redirect or disambiguation
page, or an article whose categories lead to no root (the seed's 杉田智和 case: voice actors
sit under 声優 → 日本の俳優, a branch no anime root reaches), lead to one only below `--depth`,
or pass through an excluded category.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from pathlib import Path
from typing import Any

from wikitune import formats
from wikitune.corpus.index import INDEX_FILE, PageIndex, compile_excludes, matching_exclude
from wikitune.corpus.names import MAIN_NS, normalize_title
from wikitune.errors import WikituneError
from wikitune.formats import MANIFEST

# How far up the category graph an explanation looks for a root before giving up.
MAX_ANCESTOR_STEPS = 12


def load_manifest(corpus: Path) -> dict[str, Any]:
    # Checked here too: formats' message cannot say that an unfinished extract/crawl is the usual cause.
    if not (Path(corpus) / MANIFEST).is_file():
        raise WikituneError(
            f"{corpus} has no {MANIFEST}: not a corpus directory, or its extract/crawl did not finish"
        )
    return formats.read_manifest(corpus)


def corpus_stats(corpus: Path, expect: Path | None = None, top: int = 10) -> dict[str, Any]:
    """Counts over a corpus directory (streaming `articles.jsonl`), plus missing expected titles."""
    corpus = Path(corpus)
    manifest = load_manifest(corpus)
    roots = manifest.get("roots") or []
    per_root: Counter = Counter()
    per_depth: Counter = Counter()
    per_category: Counter = Counter()
    articles = characters = 0
    titles: set[str] = set()
    for record in formats.iter_articles(corpus):
        articles += 1
        characters += len(record["text"])
        titles.add(record["title"])
        per_category.update(record["categories"])
        per_root.update(record["depth"].keys())
        if record["depth"]:
            per_depth[min(record["depth"].values())] += 1
    categories = sum(1 for _ in formats.iter_categories(corpus))
    stats: dict[str, Any] = {
        "corpus": str(corpus),
        "source": manifest.get("source"),
        "roots": roots,
        "depth_limit": manifest.get("depth"),
        "excludes": manifest.get("excludes", []),
        "articles": articles,
        "characters": characters,
        "categories": categories,
        "per_root": {root: per_root.get(root, 0) for root in roots},
        "per_depth": {str(d): n for d, n in sorted(per_depth.items())},
        "largest_categories": [[name, n] for name, n in per_category.most_common(top)],
        "skipped": manifest.get("counts", {}).get("skipped", {}),
        "truncated": manifest.get("counts", {}).get("truncated", 0),
    }
    if expect is not None:
        stats["expect"] = explain_missing(corpus, manifest, titles, _read_titles(expect))
    return stats


def _read_titles(path: Path) -> list[str]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise WikituneError(f"--expect {path}: {err.strerror}") from err
    return [normalize_title(line) for line in lines if line.strip() and not line.lstrip().startswith("#")]


def explain_missing(corpus: Path, manifest: dict[str, Any], present: set[str], expected: list[str]) -> dict[str, Any]:
    """For each expected title not in the corpus, the reason it is missing."""
    missing = [t for t in dict.fromkeys(expected) if t not in present]
    index_path = corpus / INDEX_FILE
    index = PageIndex(index_path) if index_path.is_file() else None
    explanations = []
    try:
        for title in missing:
            explanations.append({"title": title, **(_explain(title, manifest, index) if index else {"reason": "no page index in this corpus; cannot tell why"})})
    finally:
        if index:
            index.close()
    return {"expected": len(set(expected)), "found": len(set(expected)) - len(missing), "missing": explanations}


def _explain(title: str, manifest: dict[str, Any], index: PageIndex) -> dict[str, Any]:
    found = index.find_page(title)
    if found is None:
        if manifest.get("source_kind") == "api":  # a crawl's index holds only what the crawl listed
            return {"reason": "not seen by the crawl: no category it listed has this page (outside the roots' tree, or no such page)"}
        return {"reason": "not in the source: the dump has no page with this title"}
    pageid, ns, _title, redirect, disambiguation = found
    if ns != MAIN_NS:
        return {"reason": f"not an article: namespace {ns}", "pageid": pageid}
    if redirect:
        return {"reason": f"a redirect to {redirect!r}", "pageid": pageid}
    if disambiguation:
        return {"reason": "a disambiguation page", "pageid": pageid}
    categories = index.categories_of(pageid)
    info: dict[str, Any] = {"pageid": pageid, "categories": categories}
    if not categories:
        info["reason"] = "an article with no categories in the source, so no root can reach it"
        return info
    roots = manifest.get("roots") or []
    if not roots:
        info["reason"] = "an article the extraction kept no text for (see skipped.empty_text)"
        return info
    excludes = compile_excludes(manifest.get("excludes", []))
    reached, blocked, frontier_tops = _walk_up(index, categories, set(roots), excludes)
    limit = manifest.get("depth")
    if reached:
        root, steps, path = min(reached, key=lambda r: r[1])
        if limit is not None and steps > limit:
            info["reason"] = (
                f"under root {root!r} only at depth {steps} (via {' → '.join(path)}), deeper than --depth {limit}"
            )
        elif blocked:
            info["reason"] = f"every path to a root passes through an excluded category: {', '.join(sorted(blocked))}"
        else:
            info["reason"] = f"reachable from {root!r} at depth {steps} (via {' → '.join(path)}), but not extracted"
        return info
    if blocked:
        info["reason"] = f"its only paths to a root pass through excluded categories: {', '.join(sorted(blocked))}"
        return info
    info["top_categories"] = frontier_tops
    info["reason"] = (
        f"none of its categories ({', '.join(categories)}) lies under a root "
        f"({', '.join(roots)}) within {MAX_ANCESTOR_STEPS} levels; they lead up to "
        f"{', '.join(frontier_tops) or 'nothing'} and no further: add one of its categories or their "
        f"ancestors as a --root to include it"
    )
    return info


def _walk_up(index: PageIndex, start: list[str], roots: set[str], excludes: list[re.Pattern[str]]):
    """Breadth-first up the parent links; returns (roots reached with depth and path, excluded hits, tops)."""
    queue = deque((c, 0, (c,)) for c in start)
    seen = set(start)
    reached: list[tuple[str, int, tuple[str, ...]]] = []
    blocked: set[str] = set()
    tops: list[str] = []
    while queue:
        category, steps, path = queue.popleft()
        if matching_exclude(category, excludes) is not None:
            blocked.add(category)
            continue
        if category in roots:
            # The article sits `steps` levels below this root's members: its depth from the root.
            reached.append((category, steps, tuple(reversed(path))))
            continue
        parents = index.parents(category)
        if not parents and category not in tops:
            tops.append(category)
        if steps >= MAX_ANCESTOR_STEPS:
            continue
        for parent in parents:
            if parent not in seen:
                seen.add(parent)
                queue.append((parent, steps + 1, path + (parent,)))
    return reached, blocked, tops


def format_stats(stats: dict[str, Any]) -> str:
    """Human-readable rendering of `corpus_stats`."""
    lines = [
        f"corpus      {stats['corpus']}",
        f"source      {stats['source']}",
        f"articles    {stats['articles']}",
        f"characters  {stats['characters']}",
        f"categories  {stats['categories']}",
    ]
    if stats["roots"]:
        lines.append("per root")
        lines += [f"  {root}: {n}" for root, n in stats["per_root"].items()]
        lines.append("per depth (shortest from any root)")
        lines += [f"  {d}: {n}" for d, n in stats["per_depth"].items()]
    if stats["largest_categories"]:
        lines.append("largest categories (articles directly in them)")
        lines += [f"  {name}: {n}" for name, n in stats["largest_categories"]]
    lines.append("skipped")
    lines += [f"  {reason}: {n}" for reason, n in stats["skipped"].items()] or ["  none"]
    if stats["truncated"]:
        lines.append("truncated   the source dump ended early (see manifest.json 'truncation')")
    if "expect" in stats:
        e = stats["expect"]
        lines.append(f"expected    {e['found']} of {e['expected']} found; {len(e['missing'])} missing")
        for m in e["missing"]:
            lines.append(f"  {m['title']}: {m['reason']}")
    return "\n".join(lines)
