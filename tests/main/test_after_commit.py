"""Work that waits for the commit runs once after it, never after a rollback, and a
savepoint's rollback does not drop what the transaction gathered."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from app.after_commit import pending, when_committed
from app.extensions import db


@pytest.fixture
def told(app) -> list[set[int]]:
    calls: list[set[int]] = []
    when_committed("test-told")(calls.append)
    return calls


def test_runs_once_after_the_commit(told):
    pending("test-told").update({1, 2})
    pending("test-told").add(3)
    assert told == []  # not before
    db.session.commit()
    db.session.commit()
    assert told == [{1, 2, 3}]


def test_a_rollback_drops_it(told):
    pending("test-told").add(1)
    db.session.rollback()
    db.session.commit()
    assert told == []


def test_a_savepoint_rolling_back_keeps_what_the_transaction_gathered(told):
    db.session.execute(text("SELECT 1"))
    pending("test-told").add(1)
    nested = db.session.begin_nested()
    pending("test-told").add(2)
    nested.rollback()
    assert told == []  # a savepoint is not the commit
    db.session.commit()
    assert told == [{1, 2}]
