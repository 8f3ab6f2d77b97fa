"""Fixes to Whoosh 2.7.4 (unmaintained), applied when app.search is imported.

Block-quality skipping: UnionMatcher and AndMaybeMatcher loop while `aq + bq <= minquality`,
asking one side to skip blocks of quality `<= minquality - bq`. When rounding makes the sum
fit but the difference not, neither side moves and the loop never ends (a common word's
search hung for minutes). The loops below stop when a round skips nothing.
"""

from __future__ import annotations

import time
from contextvars import ContextVar

from whoosh import collectors, reading
from whoosh.filedb import structfile
from whoosh.matching import binary, mcore, wrappers


def _skip_both(a, b, minquality: float) -> int:
    skipped = 0
    aq, bq = a.block_quality(), b.block_quality()
    while a.is_active() and b.is_active() and aq + bq <= minquality:
        if aq < bq:
            moved = a.skip_to_quality(minquality - bq)
            aq = a.block_quality() if a.is_active() else 0
        else:
            moved = b.skip_to_quality(minquality - aq)
            bq = b.block_quality() if b.is_active() else 0
        if not moved:
            break
        skipped += moved
    return skipped


def _union_skip_to_quality(self, minquality):
    self._id = None
    a, b = self.a, self.b
    if not (a.is_active() or b.is_active()):
        raise mcore.ReadTooFar
    if not a.is_active():
        return b.skip_to_quality(minquality)
    if not b.is_active():
        return a.skip_to_quality(minquality)
    return _skip_both(a, b, minquality)


def _and_maybe_skip_to_quality(self, minquality):
    a, b = self.a, self.b
    if not a.is_active():
        raise mcore.ReadTooFar
    if not b.is_active():
        return a.skip_to_quality(minquality)
    return _skip_both(a, b, minquality)


binary.UnionMatcher.skip_to_quality = _union_skip_to_quality
binary.AndMaybeMatcher.skip_to_quality = _and_maybe_skip_to_quality


# A constant-score branch (the prefix of the word being typed) can say how good its blocks
# are without its field's lengths: all the same. Once the page is full of that score,
# nothing more from it can enter, so the rest of its postings are skipped, not scored.
def _constant_supports_block_quality(self) -> bool:
    return True


def _constant_skip_to_quality(self, minquality):
    if self._score > minquality or not self.child.is_active():
        return 0
    self.child.skip_to(2**62)  # past the last document: none here can reach the page
    return 1


wrappers.ConstantScoreWrapperMatcher.supports_block_quality = _constant_supports_block_quality
wrappers.ConstantScoreWrapperMatcher.skip_to_quality = _constant_skip_to_quality


# TopCollector learns the lowest score on its page only when a better document replaces
# one; when the page fills with equal scores it never does, and skips nothing. It knows it
# as soon as the page is full.
_top_collect = collectors.TopCollector._collect


def _top_collect_knowing_the_floor(self, global_docnum, score):
    result = _top_collect(self, global_docnum, score)
    if len(self.items) >= self.limit:
        self.minscore = self.items[0][0]
    return result


collectors.TopCollector._collect = _top_collect_knowing_the_floor


# Deleted documents: a segment with any wraps each posting list in a FilterMatcher, whose
# `next` returns None where the collector needs "entered a new block" to look at block
# qualities again. With one course edited, a search scored every match instead of skipping
# (a teacher's name: 489 scored for a page of 20). Its `skip_to_quality` also stopped on
# whatever the child reached, deleted or not.
def _filter_next(self):
    entered = self.child.next()
    return self._find_next() or entered


def _filter_skip_to_quality(self, minquality):
    skipped = self.child.skip_to_quality(minquality / self.boost)
    self._find_next()
    return skipped


wrappers.FilterMatcher.next = _filter_next
wrappers.FilterMatcher.skip_to_quality = _filter_skip_to_quality


# Typos: a reader of several segments looked for the words one edit away by computing the
# edit distance to every word with the same first letter (20 ms for a typo at 50,000
# courses); each segment's reader has an automaton that walks only the near words.
def _multi_terms_within(self, fieldname, text, maxdist, prefix=0):
    seen = set()
    for reader in self.readers:
        for word in reader.terms_within(fieldname, text, maxdist, prefix):
            if word not in seen:
                seen.add(word)
                yield word


reading.MultiReader.terms_within = _multi_terms_within


# Time budgets (app.search.queries.Budget): an intersection of common words may walk
# thousands of postings to find its first common document while Whoosh builds the matcher,
# before any collector can look at the clock (20 ms for "music method disk" at 50,000
# courses). The walk now reads the clock of the search that runs it, and gives up once it
# has passed.
class OutOfTime(Exception):
    """The search's time budget ran out inside a matcher."""


DEADLINE: ContextVar[float | None] = ContextVar("search_deadline", default=None)


def _intersection_find_next(self):
    a, b = self.a, self.b
    a_id, b_id = a.id(), b.id()
    entered = False
    deadline = DEADLINE.get()
    while a.is_active() and b.is_active() and a_id != b_id:
        if deadline is not None and time.perf_counter() > deadline:
            raise OutOfTime
        if a_id < b_id:
            moved = a.skip_to(b_id)
            if not a.is_active():
                return None
            entered = entered or moved
            a_id = a.id()
        else:
            moved = b.skip_to(a_id)
            if not b.is_active():
                return None
            entered = entered or moved
            b_id = b.id()
    return entered


binary.IntersectionMatcher._find_next = _intersection_find_next


# Opening a segment: Whoosh maps its file and hands each part (terms, postings, stored fields)
# to a BufferFile, whose BytesIO copies the whole part into memory. At 100,000 people that
# was 110 ms and ~100 MB for every searcher opened after a change and for every batch of the
# indexer (which opens the whole index to find the documents it replaces). The parts are read
# in place instead: a search reads a few dozen times sequentially, the rest by position.


class _InPlace:
    """A read-only file over a buffer (a part of the mapped segment), without a copy."""

    __slots__ = ("_buf", "_pos")

    def __init__(self, buf) -> None:
        self._buf = buf
        self._pos = 0

    def read(self, size: int | None = -1) -> bytes:
        start = self._pos
        end = len(self._buf) if size is None or size < 0 else start + size
        data = bytes(self._buf[start:end])
        self._pos = start + len(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        start = self._pos
        end = len(self._buf) if size is None or size < 0 else min(start + size, len(self._buf))
        step = 4096
        for offset in range(start, end, step):
            found = bytes(self._buf[offset : min(offset + step, end)]).find(b"\n")
            if found >= 0:
                return self.read(offset + found + 1 - start)
        return self.read(end - start)

    def __iter__(self):
        return iter(self.readline, b"")

    def readinto(self, target) -> int:
        data = self.read(len(target))
        target[: len(data)] = data
        return len(data)

    def seek(self, position: int, whence: int = 0) -> int:
        if whence == 1:
            position += self._pos
        elif whence == 2:
            position += len(self._buf)
        if position < 0:
            raise ValueError("negative seek position")
        self._pos = position
        return position

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        self._buf = b""


def _buffer_file_init(self, buf, name=None, onclose=None) -> None:
    self._buf = buf
    self._name = name
    self.file = _InPlace(buf)
    self.onclose = onclose
    self.is_real = False
    self.is_closed = False


structfile.BufferFile.__init__ = _buffer_file_init
