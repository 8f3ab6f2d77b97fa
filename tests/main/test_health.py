"""/healthz reports each part and answers 503 when one is down."""

from __future__ import annotations

from app import create_app


def test_healthy(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok", "search": "ok", "broker": "ok"}


def test_database_down_is_503(tmp_path):
    # A database file in a folder that does not exist cannot be opened.
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/missing/campus.db")
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json["status"] == "degraded"
    assert response.json["database"].startswith("error")


def test_broker_down_is_503(migrated_database):
    # Nothing listens on port 1: the Redis broker cannot be reached.
    app = create_app(
        "testing", SQLALCHEMY_DATABASE_URI=migrated_database, REDIS_URL="redis://127.0.0.1:1/0"
    )
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json["broker"] == "unreachable"
    assert response.json["database"] == "ok"
