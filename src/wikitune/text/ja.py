"""Japanese text logic, in one place: answer normalisation, bracket-less forms, sentence splits.

    >>> normalize_answer("「ＳＴＡＲ☆ＬＩＧＨＴ！」")
    'star☆light'
    >>> bracketless("星海のアルカディア（テレビアニメ）")
    '星海のアルカディア'

`document_sentences` and `contains_term` find a fact stated in running text (the unseen set's
leak check in `wikitune.qa.build`).

`normalize_answer` follows the AIO (JAQKET) scorer's idea, NFKC + case + width + whitespace, and
goes further where short Japanese answers differ only in spelling: long-vowel and dash variants
(ー ｰ － ‐ — ―) become one mark, tilde variants (～ 〜 ~) one tilde, brackets and quotes
(「」『』（）…) and punctuation disappear. Both the gold answer and the prediction go through it.
"""

from __future__ import annotations

import re
import unicodedata

# Dash-like characters that stand for the katakana long-vowel mark in answers typed by people
# (and models): after NFKC, the half-width ｰ is already ー and the full-width － is "-".
_LONG_VOWELS = "ー-‐‑‒–—―−─━"
_TILDES = "~〜～∼〰"
_BRACKETS = "「」『』【】〔〕〈〉《》［］｛｝()[]{}<>\"'“”‘’«»"
_DROP_CATEGORIES = ("P", "Z", "C")  # punctuation, separators (spaces), control/format

_LONG_VOWEL_TABLE = {ord(c): "ー" for c in _LONG_VOWELS}
_TILDE_TABLE = {ord(c): "~" for c in _TILDES}

# A parenthesised remark: (…) （…） 〔…〕 [...] — the qualifiers of Wikipedia titles and answers.
_PAREN = re.compile(r"\s*[（(〔\[][^（）()〔〕\[\]]*[）)〕\]]\s*")
_SENTENCE_END = re.compile(r"(?<=[。！？!?])\s*")


def normalize_answer(text: str) -> str:
    """The comparison form of a short answer.

    Args:
        text (str): an answer as written by a person or a model.

    Returns:
        str: NFKC, case-folded, long-vowel/tilde variants unified, brackets, quotes,
        punctuation and whitespace removed. Empty when nothing comparable is left.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    text = text.translate(_TILDE_TABLE).translate(_LONG_VOWEL_TABLE)
    out = []
    for ch in text:
        if ch in _BRACKETS:
            continue
        if ch in ("ー", "~"):
            out.append(ch)
            continue
        if unicodedata.category(ch)[0] in _DROP_CATEGORIES:
            continue
        out.append(ch)
    return "".join(out)


def bracketless(text: str) -> str:
    """`text` without parenthesised remarks and surrounding quote brackets, or "" if nothing changes.

    "星海のアルカディア（テレビアニメ）" -> "星海のアルカディア"; "『蒼の章』" -> "蒼の章".
    """
    stripped = _PAREN.sub("", text).strip()
    stripped = stripped.strip("「」『』\"“”").strip()
    return stripped if stripped and stripped != text else ""


def split_sentences(text: str) -> list[str]:
    """Sentences of Japanese prose, split after 。！？ (kept), blank ones dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def document_sentences(text: str) -> list[str]:
    """Sentences of a plain-text article: each line (a paragraph, heading, list item or table row) split after 。！？.

    A heading or a table row has no 。 of its own; splitting lines first keeps it from being glued
    to the sentence that follows it.
    """
    return [s for line in text.splitlines() for s in split_sentences(line)]


def contains_term(text: str, term: str) -> bool:
    """True when `term` occurs in `text` (both `normalize_answer` forms), not as part of a longer number.

    "3話" occurs in "全3話が発売" but not in "全13話": a term that starts or ends with a digit
    must not touch another digit there.
    """
    if not term:
        return False
    start = text.find(term)
    while start != -1:
        end = start + len(term)
        before_ok = not (term[0].isdigit() and start > 0 and text[start - 1].isdigit())
        after_ok = not (term[-1].isdigit() and end < len(text) and text[end].isdigit())
        if before_ok and after_ok:
            return True
        start = text.find(term, start + 1)
    return False


def char_ngrams(text: str, n: int = 2) -> list[str]:
    """Character n-grams of `text` after NFKC and case folding, word by word (no n-gram spans a space).

    A retrieval tokeniser that needs no dictionary: Japanese has no spaces, and bigrams of kanji
    and kana match names and terms well enough for BM25. A word shorter than `n` is kept whole.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    grams: list[str] = []
    for word in re.split(r"[\W_]+", text):
        if not word:
            continue
        if len(word) < n:
            grams.append(word)
        else:
            grams.extend(word[i : i + n] for i in range(len(word) - n + 1))
    return grams


def japanese_share(text: str) -> float:
    """Share of kana and kanji among the letters of `text` (0.0 when it has no letter).

    Digits, punctuation and spaces are not letters, so a Japanese sentence full of dates and
    brackets still counts as Japanese; Latin names (Arcadia of the Star Sea) count against it.
    """
    letters = japanese = 0
    for ch in text:
        if not ch.isalpha():
            continue
        letters += 1
        code = ord(ch)
        if 0x3040 <= code <= 0x30FF or 0x31F0 <= code <= 0x31FF or 0x3400 <= code <= 0x9FFF or 0xF900 <= code <= 0xFAFF \
                or 0xFF66 <= code <= 0xFF9F or ch in "々〆ヵヶ":
            japanese += 1
    return japanese / letters if letters else 0.0
