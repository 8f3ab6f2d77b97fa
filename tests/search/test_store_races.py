"""A search opened while the indexer commits: Whoosh removes the generation it replaced, so a
reader that listed the old one may find its files gone. Searches go on, never an error."""

from __future__ import annotations

import threading
import time

from whoosh.filedb.filestore import FileStorage

from app.search.store import NAMES, SearchIndex


def test_searches_opened_while_the_index_commits_never_fail(own_index):
    search = own_index.extensions["campus.search"]
    directory = search.current_directory()
    done = threading.Event()
    commits = [0]

    def commit_again_and_again() -> None:
        storage = FileStorage(directory)
        while not done.is_set():
            for name in NAMES:
                storage.open_index(indexname=name).writer().commit()  # a new generation
            commits[0] += 1

    writer = threading.Thread(target=commit_again_and_again)
    writer.start()
    failures = []
    opened = 0
    try:
        until = time.monotonic() + 3
        while time.monotonic() < until:
            fresh = SearchIndex(str(search.root), search.engine)  # as a new worker opens it
            try:
                for name in NAMES:
                    with fresh.searching(name) as searcher:
                        searcher.doc_count()
                opened += 1
            except Exception as error:  # every failure is what the test counts
                failures.append(repr(error))
    finally:
        done.set()
        writer.join()
    assert commits[0] > 10 and opened > 10
    tried = opened + len(failures)
    assert failures == [], f"{len(failures)} of {tried} opens failed: {failures[:3]}"
