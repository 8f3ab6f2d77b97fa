"""The fixes to Whoosh in app/search/patches.py, shown on a small index in memory: what a
search reads once a course was edited (its old document deleted in the big segment)."""

from __future__ import annotations

import pytest
from whoosh import collectors
from whoosh.fields import ID, TEXT, Schema
from whoosh.filedb.filestore import RamStorage
from whoosh.query import Term

import app.search  # noqa: F401 - applies the patches


def index_with_a_deletion(documents: int):
    """`documents` courses with "rock" in the title, the better ones first (Whoosh ranks
    a shorter title higher), and the first course edited: its old version deleted."""
    index = RamStorage().create_index(Schema(id=ID(stored=True, unique=True), title=TEXT))
    writer = index.writer()
    for n in range(documents):
        writer.add_document(id=str(n), title="rock " + "filler " * (n // 50))
    writer.commit()
    writer = index.writer()
    writer.delete_by_term("id", "0")
    writer.commit(merge=False)  # the deletion stays in the big segment, as the indexer's do
    return index


def test_a_deleted_document_does_not_stop_block_skipping():
    index = index_with_a_deletion(2_000)
    with index.searcher() as searcher:
        postings = searcher.reader().postings("title", "rock")
        blocks = 0
        while postings.is_active():
            blocks += bool(postings.next())
        assert blocks >= 2  # "entered a new block", as a posting list without deletions says

        top = collectors.TopCollector(10)
        searcher.search_with_collector(Term("title", "rock"), top)
        found = [int(hit["id"]) for hit in top.results()]
    assert 0 not in found and found == list(range(1, 11))
    assert top.skipped_times > 0  # the later, worse blocks were skipped, not scored


def test_skipping_never_stops_on_a_deleted_document():
    """Blocks of long titles are skipped; the next block is worth reading only because of
    its first course, whose old version was deleted: the skip must not stop on it."""
    index = RamStorage().create_index(Schema(id=ID(stored=True, unique=True), title=TEXT))
    writer = index.writer()
    for n in range(2_000):
        title = "rock" if n == 1024 else "rock filler" if n < 3 else "rock " + "filler " * 20
        writer.add_document(id=str(n), title=title)
    writer.commit()
    writer = index.writer()
    writer.delete_by_term("id", "1024")
    writer.commit(merge=False)
    with index.searcher() as searcher:
        top = collectors.TopCollector(3)
        searcher.search_with_collector(Term("title", "rock"), top)
        found = [int(hit["id"]) for hit in top.results()]
    assert found == [0, 1, 2]


def test_words_one_edit_away_are_found_in_every_segment():
    index = RamStorage().create_index(Schema(id=ID(stored=True, unique=True), title=TEXT))
    for words in (["geology", "geometry"], ["geologi", "biology"]):  # a batch, a segment
        writer = index.writer()
        for n, word in enumerate(words):
            writer.add_document(id=f"{word}{n}", title=word)
        writer.commit(merge=False)
    with index.searcher() as searcher:
        reader = searcher.reader()
        assert len(reader.leaf_readers()) == 2
        assert sorted(reader.terms_within("title", "geolog", 1, prefix=1)) == [
            "geologi",
            "geology",
        ]


def test_an_intersection_stops_walking_once_its_search_is_out_of_time():
    """ "rock" and "lava" meet only in the last course: finding it walks both posting lists
    while Whoosh builds the matcher, before any collector looks at the clock."""
    import time

    from whoosh.query import And

    from app.search import patches
    from app.search.queries import Budget

    index = RamStorage().create_index(Schema(id=ID(stored=True, unique=True), title=TEXT))
    writer = index.writer()
    for n in range(3_000):
        words = "rock" if n < 1_500 else "lava"
        writer.add_document(id=str(n), title=f"{words} rock" if n == 2_999 else words)
    writer.commit()
    both = And([Term("title", "rock"), Term("title", "lava")])
    with index.searcher() as searcher:
        token = patches.DEADLINE.set(time.perf_counter() - 1)
        try:
            with pytest.raises(patches.OutOfTime):
                both.matcher(searcher)
        finally:
            patches.DEADLINE.reset(token)
        assert both.matcher(searcher).id() == 2_999  # no search's clock: walked to the end

        unbounded = Budget(collectors.TopCollector(10), None)
        searcher.search_with_collector(both, unbounded)
        assert [hit["id"] for hit in unbounded.results()] == ["2999"]
        assert not unbounded.ran_out

        late = Budget(collectors.TopCollector(10), time.perf_counter() - 1)
        searcher.search_with_collector(both, late)
        assert late.ran_out and list(late.results()) == []


def test_a_page_is_not_left_empty_for_lack_of_time():
    """Past its deadline with nothing found, a search goes on to its last resort for the
    first result; with results already on the page it stops."""
    import time

    from app.search.queries import Budget

    index = RamStorage().create_index(Schema(id=ID(stored=True, unique=True), title=TEXT))
    writer = index.writer()
    for n in range(3_000):
        writer.add_document(id=str(n), title="rock lava" if n == 2_999 else "rock")
    writer.commit()
    with index.searcher() as searcher:
        now = time.perf_counter()
        empty_so_far = Budget(collectors.TopCollector(10), now - 1, now + 10, shown=0)
        searcher.search_with_collector(Term("title", "lava"), empty_so_far)
        assert [hit["id"] for hit in empty_so_far.results()] == ["2999"]

        some_shown = Budget(collectors.TopCollector(10), now - 1, now + 10, shown=5)
        searcher.search_with_collector(Term("title", "lava"), some_shown)
        assert some_shown.ran_out and [hit["id"] for hit in some_shown.results()] == []


def test_opening_a_segment_reads_it_in_place_instead_of_copying_it(tmp_path):
    """Every searcher opened after a change, and every batch of the indexer, opens the
    segments: a copy of each in memory cost 110 ms and ~100 MB at 100,000 people."""
    import random
    import tracemalloc

    from whoosh.filedb.filestore import FileStorage

    rng = random.Random(4)
    vocabulary = [f"w{n}" for n in range(5_000)]
    schema = Schema(id=ID(stored=True, unique=True), title=TEXT(stored=True))
    index = FileStorage(str(tmp_path)).create_index(schema)
    writer = index.writer()
    for n in range(4_000):
        writer.add_document(id=str(n), title=" ".join(rng.choices(vocabulary, k=40)))
    writer.commit()
    segment_bytes = sum(path.stat().st_size for path in tmp_path.glob("*.seg"))
    assert segment_bytes > 1_000_000

    tracemalloc.start()
    try:
        searcher = index.searcher()
        first = [hit["title"] for hit in searcher.search(Term("title", "w7"), limit=5)]
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < segment_bytes / 10
    with searcher:  # and what is read in place is the index as written
        assert first and all("w7" in title.split() for title in first)
        found = searcher.search(Term("title", "w7"), limit=None)
        assert len(found) == sum(1 for d in searcher.documents() if "w7" in d["title"].split())
        assert sorted(int(d["id"]) for d in searcher.documents()) == list(range(4_000))
