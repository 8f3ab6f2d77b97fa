"""Answering searches: Whoosh query objects built from the words typed (never Whoosh's
query parser), a ranked page of ids, highlighting, "did you mean", and a SQL fallback."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

from flask import current_app
from markupsafe import Markup, escape
from whoosh import collectors
from whoosh.matching.mcore import NullMatcher, NullMatcherClass
from whoosh.matching.wrappers import ConstantScoreWrapperMatcher
from whoosh.query import And, ConstantScoreQuery, Or, Query, Term
from whoosh.support.charset import accent_map

from app.search import patches
from app.search.schema import PREFIX_MAX, PREFIX_MIN, WORD_PATTERN, plain_words, stem
from app.search.store import SearchIndex, SearchUnavailable
from app.web import page_count

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
        words = dict.fromkeys(word[:MAX_WORD] for word in plain_words(text[:2_000]))
        return cls(tuple(words)[:MAX_WORDS])

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
        # Every word starting so scores the same: the matcher then skips whole blocks once
        # the page is full, instead of scoring each of thousands of matches.
        clauses.append(SameScore(Term("complete", word[:PREFIX_MAX]), score=0.5))
    return Either(clauses)


class Either(Or):
    """Whoosh's Or, always as a tree of unions that can skip blocks. Left to choose, Whoosh
    preloads each segment of fewer than 5,000 documents into arrays of 2,048 scores cleared
    and scanned in Python: the small segment that a day's edits make cost every search
    ~2 ms, however few documents it held."""

    matcher_type = Or.DEFAULT_MATCHER


class SameScore(ConstantScoreQuery):
    """Whoosh's ConstantScoreQuery, without reading every posting into a list first: its
    matcher reads them as needed and skips the rest once they cannot reach the page
    (app.search.patches)."""

    def matcher(self, searcher, context=None):
        found = self.child.matcher(searcher, context)
        if isinstance(found, NullMatcherClass):
            return found
        return ConstantScoreWrapperMatcher(found, self.score)


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
    return And(parts) if every else Either(parts)


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
    estimated: bool = False  # True: `total` is Whoosh's estimate, not a count


CourseHits = Hits
UserHits = Hits


Scope = Callable[[object], tuple[set[int] | None, set[int] | None]]


def _search(name: str, words: Words, tiers: list[dict], fuzzy: str, scope: Scope, number: int,
            per_page: int, suggest_from: str) -> Hits:  # fmt: skip
    """`scope(searcher)` gives the documents that may answer (None: any) and those that may
    not (None: none), as sets of document numbers: filters outside the scored query keep
    Whoosh's block-quality skipping, which scores only what can reach the page.

    `tiers` are the fields to look in, the short ones first: their matches come before those
    found only in longer text, so that a common word need not be scored in every description
    when the short fields already fill the page."""
    search: SearchIndex = current_app.extensions["campus.search"]
    highlighter = words.highlighter()
    with search.searching(name) as searcher:
        allowed, hidden = scope_sets = scope(searcher)
        # The time budgets count from here: the turn waited for and the searcher opened
        # after a change are no reason to show a shorter page.
        began = time.perf_counter()
        if not words:
            return _listed(searcher, allowed or set(), hidden, number, per_page)
        reader = searcher.reader()
        for attempt, every in enumerate((True, False)):
            queries = [words_query(words, exact, fuzzy, every, reader) for exact in tiers]
            if queries[-1] is None:
                break
            hits = _tiered(searcher, queries, allowed, hidden, number, per_page, began)
            if hits.total:
                hits.highlighter = highlighter
                hits.any_word = attempt == 1
                return hits
        suggestion = _suggest(searcher, words, suggest_from)
        if suggestion and not _finds(searcher, Words.of(suggestion), tiers, fuzzy, scope_sets):
            suggestion = None  # the word exists only where this viewer may not look
        return Hits([], 0, 1, highlighter, suggestion=suggestion)


def _finds(searcher, words: Words, tiers: list[dict], fuzzy: str, scope_sets) -> bool:
    """Whether `words` find anything this viewer may see: a suggestion is offered only then,
    so that drafts' and deleted courses' words never show (the corrector reads every word of
    the index)."""
    allowed, hidden = scope_sets
    reader = searcher.reader()
    queries = [words_query(words, exact, fuzzy, True, reader) for exact in tiers]
    return queries[-1] is not None and bool(
        _tiered(searcher, queries, allowed, hidden, 1, 1, time.perf_counter()).total
    )


def cached_docs(searcher, key: str, query: Query) -> frozenset[int]:
    """A filter's document numbers, kept with the searcher: a new searcher (the index
    changed) starts afresh."""
    cache = searcher.__dict__.setdefault("_campus_docsets", {})
    if key not in cache:
        cache[key] = frozenset(searcher.docs_for_query(query))
    return cache[key]


def _listed(searcher, allowed: set[int], hidden: set[int] | None, number: int,
            per_page: int) -> Hits:  # fmt: skip
    """No words, only filters: the documents in index order, oldest first."""
    docnums = sorted(allowed - hidden if hidden else allowed)
    pages = page_count(len(docnums), per_page)
    number = min(number, pages)
    shown = docnums[(number - 1) * per_page : number * per_page]
    ids = [int(searcher.stored_fields(docnum)["id"]) for docnum in shown]
    return Hits(ids, len(docnums), number, Highlighter())


# When each tier stops scoring, in seconds after the search began (once the searcher and the
# viewer's filters are ready; building its query included): the short fields first, then
# the longer text with what time is left. A query of common words matched by thousands of
# courses then shows the best of what was read in that time (in index order, oldest first)
# instead of scoring them all; most queries finish well within it. The total is then an
# estimate. At 50,000 courses this keeps the whole page's data within 15 ms at p95
# (BENCHMARKS.md "Search"); None: no limit. A page is not left empty for lack of time: until
# the first result, a tier goes on to LAST_RESORT. An index of fewer than BUDGETED_FROM
# documents is always searched whole, exactly: scoring every match of its commonest word
# takes a few milliseconds, and a small school's page never depends on the machine's load.
BUDGETS = (0.007, 0.009)
LAST_RESORT = 0.05
BUDGETED_FROM = 5_000


class Budget(collectors.WrappingCollector):
    """Collects what its child collects until the clock passes `deadline` (None: no limit)
    with something to show (`shown` found before, or its own), or passes `last_resort`."""

    def __init__(self, child, deadline: float | None, last_resort: float | None = None,
                 shown: int = 0) -> None:  # fmt: skip
        self.child = child
        self.deadline, self.last_resort, self.shown = deadline, last_resort, shown
        self.ran_out = False
        self._token = None

    def prepare(self, top_searcher, q, context) -> None:
        self.child.prepare(top_searcher, q, context)
        # Read by Whoosh's intersections while they look for their first match.
        self._token = patches.DEADLINE.set(self.deadline if self.shown else self.last_resort)

    def finish(self) -> None:
        if self._token is not None:
            patches.DEADLINE.reset(self._token)
            self._token = None
        self.child.finish()

    def _late(self) -> bool:
        if self.deadline is None or time.perf_counter() <= self.deadline:
            return False
        return self._done_past_deadline()

    def _done_past_deadline(self) -> bool:
        if self.shown or self.child.items or self.last_resort is None:
            return True
        return time.perf_counter() > self.last_resort

    def set_subsearcher(self, subsearcher, offset) -> None:
        # Out of time: the next segment's matchers (a lookup of every term) are not built.
        if self._late():
            self.ran_out = True
        if not self.ran_out:
            try:
                return super().set_subsearcher(subsearcher, offset)
            except patches.OutOfTime:  # finding the first match of an intersection
                self.ran_out = True
        # What the collectors read back; nothing more is collected.
        self.subsearcher, self.offset, self.matcher = subsearcher, offset, NullMatcher()
        if getattr(self.child, "matcher", None) is None:  # out of time in the first segment
            self.child.matcher = self.matcher

    def matches(self):
        if self.ran_out:
            return
        # The clock is read after every match: an intersection of common words may spend
        # milliseconds between two of them, and a clock read costs far less than a match.
        deadline, clock = self.deadline, time.perf_counter
        try:
            for docnum in self.child.matches():
                yield docnum
                if deadline is not None and clock() > deadline and self._done_past_deadline():
                    self.ran_out = True
                    return
        except patches.OutOfTime:
            self.ran_out = True

    def collect_matches(self) -> None:
        for docnum in self.matches():
            self.child.collect(docnum)


def _tiered(searcher, queries: list, allowed, hidden, number: int, per_page: int,
            began: float) -> Hits:  # fmt: skip
    """The page `number`: the first tier's matches ranked, then the next tier's other
    matches ranked, and so on. Only as many are scored as the page needs; the total is exact
    when the answer is small, Whoosh's estimate otherwise (counting every match would cost
    what the ranking saved)."""
    if allowed is not None and not allowed:
        return Hits([], 0, 1, Highlighter())  # Whoosh reads an empty filter as no filter
    limit = number * per_page
    docnums: list[int] = []
    masked = set(hidden or ())
    whole = searcher.doc_count_all() < BUDGETED_FROM
    for position, query in enumerate(queries):
        if query is None:
            continue
        wanted = limit - len(docnums)
        seconds = None if whole else BUDGETS[min(position, 1)]
        budget = Budget(collectors.TopCollector(wanted), seconds and began + seconds,
                        seconds and began + LAST_RESORT, len(docnums))  # fmt: skip
        collector = collectors.FilterCollector(budget, allowed, masked or None)
        searcher.search_with_collector(query, collector)
        found = [hit.docnum for hit in collector.results()]
        docnums += found
        if len(found) >= wanted or budget.ran_out:  # the rest of the answer is estimated
            estimate = queries[-1].estimate_size(searcher.reader())
            # Whoosh counts every document with the words; never more than may be shown.
            ceiling = (
                len(allowed)
                if allowed is not None
                else searcher.reader().doc_count() - len(hidden or ())
            )
            total, estimated = max(min(estimate, ceiling), len(docnums)), True
            break
        if position < len(queries) - 1:
            masked |= set(found)
    else:
        total, estimated = len(docnums), False
    pages = page_count(total, per_page)
    if number > pages:
        return _tiered(searcher, queries, allowed, hidden, pages, per_page, time.perf_counter())
    shown = docnums[(number - 1) * per_page : limit]
    ids = [int(searcher.stored_fields(docnum)["id"]) for docnum in shown]
    return Hits(ids, total, number, Highlighter(), estimated=estimated)


def _suggest(searcher, words: Words, fieldname: str) -> str | None:
    corrector = searcher.corrector(fieldname)
    suggested = []
    for word in words.words:
        options = corrector.suggest(word, limit=1, maxdist=2, prefix=1) if len(word) > 2 else []
        suggested.append(options[0] if options else word)
    return " ".join(suggested) if tuple(suggested) != words.words else None


COURSE_SHORT = {"title": "stem", "keywords": "stem", "teacher": "plain"}
COURSE_TIERS = [COURSE_SHORT, COURSE_SHORT | {"description": "stem"}]
COURSE_FUZZY = "words"
USER_TIERS = [{"name": "plain", "email": "plain"}]
USER_FUZZY = "name"


def courses(q: str, teacher: str, viewer_id: int | None, number: int, per_page: int) -> Hits:
    """Published courses, and the viewer's own drafts, matching `q` and the `teacher` (a
    username or words of a name). Raises SearchUnavailable when the index cannot be read."""
    teacher_words, words = Words.of(teacher), Words.of(q)
    if not (words or teacher_words):
        return Hits([], 0, 1, Highlighter())

    def scope(searcher):
        hidden = cached_docs(searcher, "drafts", Term("published", False))
        if viewer_id is not None and hidden:
            hidden = hidden - set(searcher.docs_for_query(Term("teacher_id", str(viewer_id))))
        allowed = None
        if teacher_words:
            by_name = And([Term("teacher", w) for w in teacher_words.words])
            by_username = Term("teacher_username", teacher.strip().lower())
            allowed = set(searcher.docs_for_query(Or([by_username, by_name])))
        return allowed, set(hidden)

    return _search("courses", words, COURSE_TIERS, COURSE_FUZZY, scope, number, per_page,
                   "words")  # fmt: skip


def users(q: str, role: str | None, course_id: int | None, number: int, per_page: int) -> Hits:
    words = Words.of(q)
    if not (words or role or course_id is not None):
        return Hits([], 0, 1, Highlighter())

    def scope(searcher):
        allowed = None
        if role:
            allowed = set(cached_docs(searcher, f"role:{role}", Term("role", role)))
        if course_id is not None:
            members = set(searcher.docs_for_query(Term("courses", str(course_id))))
            allowed = members if allowed is None else allowed & members
        return allowed, None

    return _search("users", words, USER_TIERS, USER_FUZZY, scope, number, per_page, "name")


# Highlighting -------------------------------------------------------------------------------


@dataclass
class Highlighter:
    """Marks the words of a text that the query matched: escaped first, then `<mark>`."""

    stems: set[str] = field(default_factory=set)
    words: set[str] = field(default_factory=set)
    prefix: str | None = None
    fuzzy: set[str] = field(default_factory=set)

    # Whether a word of the text, as written, is one the query matched: the same words come
    # back often in a page of descriptions, so each is decided once.
    memo: dict[str, bool] = field(default_factory=dict, repr=False, compare=False)

    @cached_property
    def _starts(self) -> tuple[set[str], set[str]]:
        """The letters a matched word may begin with, and those its second letter may be
        (a typo in the first letter): most words of a description are decided by these."""
        typos = {letter for word in self.fuzzy for letter in word[:2]}
        firsts = {w[:1] for w in self.words} | {s[:1] for s in self.stems} | typos
        return firsts | {(self.prefix or "")[:1]}, typos

    def _matches(self, token: str) -> bool:
        firsts, seconds = self._starts
        if token[:1] not in firsts and token[1:2] not in seconds:
            return False  # a stem keeps its word's first letter
        if token in self.words or (self.prefix and token.startswith(self.prefix)):
            return True
        if self.stems and stem(token) in self.stems:
            return True
        return len(token) >= FUZZY_MIN and any(one_edit_apart(token, w) for w in self.fuzzy)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where the matched words are in `text`."""
        if not (self.words or self.prefix):
            return []
        memo, matched = self.memo, set()
        for token in set(TOKEN.findall(text)):
            found = memo.get(token)
            if found is None:
                found = memo[token] = self._matches(fold(token))
            if found:
                matched.add(token)
        if not matched:  # most descriptions: their words listed and decided, none placed
            return []
        return [match.span() for match in TOKEN.finditer(text) if match.group() in matched]

    def mark(self, text: str) -> Markup:
        return self._marked(text, self.spans(text))

    def excerpt(self, text: str, width: int = 220) -> Markup:
        """A piece of `text` of about `width` characters around its first match."""
        spans = self.spans(text)  # one pass: the first match and those shown
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
        if not spans:
            return escape(text)
        out, position = [], 0
        for start, end in spans:
            out += (escape(text[position:start]), MARK, escape(text[start:end]), END_MARK)
            position = end
        out.append(escape(text[position:]))
        return Markup("").join(out)


MARK, END_MARK = Markup("<mark>"), Markup("</mark>")
TOKEN = re.compile(WORD_PATTERN)  # the schema's words, without Whoosh's token objects


@lru_cache(maxsize=50_000)
def fold(word: str) -> str:
    """A word of the text as the index holds it: lower case, accents folded (the PLAIN
    analyzer's filters)."""
    return word.lower().translate(accent_map)


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
