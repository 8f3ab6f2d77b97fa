"""Answering searches: Whoosh query objects built from the words typed (never Whoosh's
query parser), a ranked page of ids, highlighting, "did you mean", and a SQL fallback."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from flask import current_app
from markupsafe import Markup, escape
from whoosh.query import And, Or, Query, Term

from app.search.schema import PLAIN, PREFIX_MAX, PREFIX_MIN, plain_words, stem
from app.search.store import SearchIndex, SearchUnavailable

log = logging.getLogger(__name__)
MAX_WORDS = 8
MAX_WORD = 40
FUZZY_MIN = 4  # words this long tolerate one typo


@dataclass(frozen=True)
class Words:
    """The words of a query, normalised as the index holds them; the last is being typed."""

    words: tuple[str, ...]

    @classmethod
    def of(cls, text: str) -> Words:
        return cls(tuple(word[:MAX_WORD] for word in plain_words(text[:2_000])[:MAX_WORDS]))

    def __bool__(self) -> bool:
        return bool(self.words)

    def each(self):
        """(word, its stem or None, whether it is the last) for each word worth searching:
        a stop word counts only as the last, where it may be the start of a longer word."""
        for position, word in enumerate(self.words):
            last = position == len(self.words) - 1
            stemmed = stem(word)
            if stemmed is None and not last:
                continue
            yield word, stemmed, last

    def highlighter(self) -> Highlighter:
        return Highlighter(
            stems={s for _w, s, _l in self.each() if s},
            words=set(self.words),
            prefix=self.words[-1] if self.words and len(self.words[-1]) >= PREFIX_MIN else None,
            fuzzy={w for w in self.words if len(w) >= FUZZY_MIN},
        )


def word_query(
    word: str, stemmed: str | None, last: bool, exact: dict, fuzzy: str, reader
) -> Query:
    """Any field holding the word: `exact` maps fields to "stem" or "plain". A word of four or
    more letters that no short field holds may be a typo: the `fuzzy` field's words one edit
    away (the most frequent few) count too."""
    clauses: list[Query] = []
    for name, kind in exact.items():
        if kind == "plain":
            clauses.append(Term(name, word))
        elif stemmed:
            clauses.append(Term(name, stemmed))
    if len(word) >= FUZZY_MIN and (fuzzy, word) not in reader:
        clauses += [Term(fuzzy, near, boost=0.5) for near in near_words(reader, fuzzy, word)]
    if last and len(word) >= PREFIX_MIN:
        clauses.append(Term("complete", word[:PREFIX_MAX], boost=0.8))
    return Or(clauses)


def near_words(reader, fieldname: str, word: str, most: int = 8) -> list[str]:
    """Words of the field one typo from `word`: an insertion, deletion or substitution after
    the first letter (Whoosh's automaton), or two neighbours swapped."""
    found = set(reader.terms_within(fieldname, word, 1, prefix=1))
    for i in range(1, len(word) - 1):
        swapped = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        if (fieldname, swapped) in reader:
            found.add(swapped)
    found.discard(word)
    if len(found) > most:
        found = set(sorted(found, key=lambda w: -reader.doc_frequency(fieldname, w))[:most])
    return sorted(found)


def words_query(words: Words, exact: dict, fuzzy: str, every: bool, reader) -> Query | None:
    parts = [word_query(w, s, last, exact, fuzzy, reader) for w, s, last in words.each()]
    if not parts:
        return None
    return And(parts) if every else Or(parts)


@dataclass
class Hits:
    """A page of ids in ranked order and the number of matches (estimated for big answers)."""

    ids: list[int]
    total: int
    number: int
    highlighter: Highlighter
    suggestion: str | None = None
    fallback: bool = False  # True: the index could not be read, SQL answered
    any_word: bool = False  # True: no result had every word; these have some


CourseHits = Hits
UserHits = Hits


def _search(name: str, words: Words, exact: dict, fuzzy: str, restrict: Query | None,
            number: int, per_page: int, suggest_from: str) -> Hits:  # fmt: skip
    search: SearchIndex = current_app.extensions["campus.search"]
    highlighter = words.highlighter()
    with search.searching(name) as searcher:
        reader = searcher.reader()
        queries = [words_query(words, exact, fuzzy, every, reader) for every in (True, False)]
        if not words:
            queries = [None]
        for attempt, query in enumerate(queries):
            if words and query is None:
                continue
            combined = _combine(query, restrict)
            if combined is None:
                return Hits([], 0, 1, highlighter)
            hits = _page(searcher, combined, number, per_page, ranked=query is not None)
            if hits.total:
                hits.highlighter = highlighter
                hits.any_word = attempt == 1
                return hits
        suggestion = _suggest(searcher, words, suggest_from) if words else None
        return Hits([], 0, 1, highlighter, suggestion=suggestion)


def _combine(query: Query | None, restrict: Query | None) -> Query | None:
    parts = [part for part in (query, restrict) if part is not None]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else And(parts)


def _page(searcher, query: Query, number: int, per_page: int, ranked: bool) -> Hits:
    """Score only as many as the page needs; the total is exact when the answer is small,
    an estimate otherwise."""
    limit = number * per_page
    results = searcher.search(query, limit=limit, scored=ranked)
    found = results.scored_length()
    if found < limit or results.has_exact_length():
        total = len(results) if results.has_exact_length() else found
    else:
        total = max(results.estimated_length(), found)
    pages = max(1, -(-total // per_page))
    if number > pages:
        return _page(searcher, query, pages, per_page, ranked)
    ids = [int(hit["id"]) for hit in results[(number - 1) * per_page : limit]]
    return Hits(ids, total, number, Highlighter())


def _suggest(searcher, words: Words, fieldname: str) -> str | None:
    corrector = searcher.corrector(fieldname)
    suggested = []
    for word in words.words:
        options = corrector.suggest(word, limit=1, maxdist=2, prefix=1) if len(word) > 2 else []
        suggested.append(options[0] if options else word)
    return " ".join(suggested) if tuple(suggested) != words.words else None


COURSE_EXACT = {"title": "stem", "keywords": "stem", "description": "stem", "teacher": "plain"}
COURSE_FUZZY = "words"
USER_EXACT = {"name": "plain", "email": "plain"}
USER_FUZZY = "name"


def courses(q: str, teacher: str, viewer_id: int | None, number: int, per_page: int) -> Hits:
    """Published courses, and the viewer's own drafts, matching `q` and the `teacher` (a
    username or words of a name). Raises SearchUnavailable when the index cannot be read."""
    visible = Term("published", True)
    if viewer_id is not None:
        visible = Or([visible, Term("teacher_id", str(viewer_id))])
    restrict: Query = visible
    teacher_words, words = Words.of(teacher), Words.of(q)
    if not (words or teacher_words):
        return Hits([], 0, 1, Highlighter())
    if teacher_words:
        by_name = And([Term("teacher", w) for w in teacher_words.words])
        by_username = Term("teacher_username", teacher.strip().lower())
        restrict = And([visible, Or([by_username, by_name])])
    return _search("courses", words, COURSE_EXACT, COURSE_FUZZY, restrict, number,
                   per_page, "words")  # fmt: skip


def users(q: str, role: str | None, course_id: int | None, number: int, per_page: int) -> Hits:
    filters: list[Query] = []
    if role:
        filters.append(Term("role", role))
    if course_id is not None:
        filters.append(Term("courses", str(course_id)))
    restrict = And(filters) if len(filters) > 1 else (filters[0] if filters else None)
    if restrict is None and not Words.of(q):
        return Hits([], 0, 1, Highlighter())
    return _search("users", Words.of(q), USER_EXACT, USER_FUZZY, restrict, number, per_page,
                   "name")  # fmt: skip


# Highlighting -------------------------------------------------------------------------------


@dataclass
class Highlighter:
    """Marks the words of a text that the query matched: escaped first, then `<mark>`."""

    stems: set[str] = field(default_factory=set)
    words: set[str] = field(default_factory=set)
    prefix: str | None = None
    fuzzy: set[str] = field(default_factory=set)

    def matches(self, token: str) -> bool:
        if token in self.words or (self.prefix and token.startswith(self.prefix)):
            return True
        if self.stems and stem(token) in self.stems:
            return True
        return len(token) >= FUZZY_MIN and any(one_edit_apart(token, w) for w in self.fuzzy)

    def spans(self, text: str) -> list[tuple[int, int]]:
        if not (self.words or self.prefix):
            return []
        return [
            (token.startchar, token.endchar)
            for token in PLAIN(text, chars=True)
            if self.matches(token.text)
        ]

    def mark(self, text: str) -> Markup:
        return self._marked(text, self.spans(text))

    def excerpt(self, text: str, width: int = 220) -> Markup:
        """A piece of `text` of about `width` characters around its first match."""
        spans = self.spans(text)
        start = 0
        if spans and spans[0][1] > width - 40:
            start = text.rfind(" ", 0, max(spans[0][0] - 60, 0)) + 1
        end = len(text) if len(text) - start <= width else text.rfind(" ", start, start + width)
        end = end if end > start else min(len(text), start + width)
        piece = [(s - start, e - start) for s, e in spans if s >= start and e <= end]
        marked = self._marked(text[start:end], piece)
        return escape("…" if start else "") + marked + escape("…" if end < len(text) else "")

    @staticmethod
    def _marked(text: str, spans: list[tuple[int, int]]) -> Markup:
        out, position = [], 0
        for start, end in spans:
            out.append(escape(text[position:start]))
            out.append(Markup("<mark>") + escape(text[start:end]) + Markup("</mark>"))
            position = end
        out.append(escape(text[position:]))
        return Markup("").join(out)


def one_edit_apart(a: str, b: str) -> bool:
    """True when one insertion, deletion, substitution or swap of neighbours turns a into b."""
    if a == b or abs(len(a) - len(b)) > 1:
        return a == b
    if len(a) == len(b):
        diffs = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diffs) == 1 or (
            len(diffs) == 2 and diffs[1] == diffs[0] + 1 and a[diffs[0]] == b[diffs[1]]
            and a[diffs[1]] == b[diffs[0]]
        )  # fmt: skip
    short, long = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long[i]:
        i += 1
    return short[i:] == long[i + 1 :]


__all__ = ["CourseHits", "Highlighter", "Hits", "SearchUnavailable", "UserHits", "Words"]
