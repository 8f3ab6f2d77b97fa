"""The command line: creating accounts (the only way to make an admin), roles, demo data."""

from __future__ import annotations

from sqlalchemy import func, select

from app.cli import DEMO_PASSWORD
from app.extensions import db
from app.models import AuditEvent, Course, Enrollment, User
from tests.helpers import user_count


def test_users_create_makes_an_admin(app):
    result = app.test_cli_runner().invoke(
        args=[
            "users",
            "create",
            "--username",
            "Head",
            "--email",
            "head@school.example",
            "--full-name",
            "The Head",
            "--role",
            "admin",
            "--password",
            "a-long-admin-secret",
        ],
    )
    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(User).where(User.username == "head"))
    assert user.role == "admin"


def test_users_create_applies_the_registration_rules(app, make_user):
    make_user("taken")
    result = app.test_cli_runner().invoke(
        args=[
            "users",
            "create",
            "--username",
            "TAKEN",
            "--email",
            "bad",
            "--full-name",
            "X",
            "--password",
            "password123",
        ],
    )
    assert result.exit_code != 0
    assert "username" in result.output and "email" in result.output and "password" in result.output
    assert user_count() == 1


def test_set_role_changes_role_and_ends_sessions(app, client, make_user, login_as):
    user = make_user("grace", email="grace@school.example")
    login_as(user)
    result = app.test_cli_runner().invoke(
        args=["users", "set-role", "GRACE@school.example", "teacher"]
    )
    assert result.exit_code == 0, result.output
    assert db.session.get(User, user.id).role == "teacher"
    assert client.get("/dashboard").status_code == 302
    event = db.session.scalar(select(AuditEvent))
    assert (event.actor, event.action, event.subject) == ("command line", "role_changed", "grace")


def test_the_last_admin_keeps_the_role_on_the_command_line_too(app, make_user):
    make_user("ada", email="ada@school.example", role="admin")
    result = app.test_cli_runner().invoke(
        args=["users", "set-role", "ada@school.example", "student"]
    )
    assert result.exit_code != 0 and "last active admin" in result.output
    assert db.session.scalar(select(User.role)) == "admin"
    assert db.session.scalar(select(func.count(AuditEvent.id))) == 0


def test_deactivate_and_reactivate_from_the_command_line(app, client, make_user, login_as):
    login_as(make_user("grace"))
    runner = app.test_cli_runner()
    assert runner.invoke(args=["users", "deactivate", "grace"]).exit_code == 0
    assert client.get("/dashboard").status_code == 302
    assert runner.invoke(args=["users", "reactivate", "grace"]).exit_code == 0
    assert runner.invoke(args=["users", "deactivate", "nobody"]).exit_code != 0
    actions = db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["deactivated", "reactivated"]


def test_set_role_refuses_unknown_roles_and_people(app, make_user):
    make_user("grace", email="grace@school.example")
    runner = app.test_cli_runner()
    assert runner.invoke(args=["users", "set-role", "grace@school.example", "king"]).exit_code != 0
    assert (
        runner.invoke(args=["users", "set-role", "nobody@school.example", "admin"]).exit_code != 0
    )
    assert db.session.scalar(select(User.role)) == "student"


def test_seed_demo_fills_an_empty_database_once(app, client):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0
    roles = db.session.scalars(select(User.role)).all()
    assert (roles.count("admin"), roles.count("teacher"), roles.count("student")) == (1, 2, 10)
    assert "teacher1" in first.output and DEMO_PASSWORD in first.output
    statuses = db.session.execute(
        select(Course.title, Enrollment.status).join(Enrollment.course)
    ).all()
    writing = [status for title, status in statuses if title == "Creative Writing Workshop"]
    assert (writing.count("enrolled"), writing.count("waitlisted")) == (3, 2)
    assert db.session.scalar(select(func.count()).select_from(Course)) == 6

    again = runner.invoke(args=["seed-demo"])
    assert "already has accounts" in again.output
    assert user_count() == 13
    response = client.post_form(
        "/auth/login", {"login": "admin@campus.example", "password": DEMO_PASSWORD}
    )
    assert response.status_code == 303


def test_set_password_lets_an_admin_help_and_ends_sessions(app, client, make_user, login_as):
    user = make_user("grace", email="grace@school.example")
    login_as(user)
    runner = app.test_cli_runner()
    weak = runner.invoke(args=["users", "set-password", "grace", "--password", "password123"])
    assert weak.exit_code != 0 and "too common" in weak.output
    result = runner.invoke(args=["users", "set-password", "GRACE@school.example",
                                 "--password", "a-fresh-start-2026"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert client.get("/dashboard").status_code == 302
    signed_in = client.post_form(
        "/auth/login", {"login": "grace", "password": "a-fresh-start-2026"}
    )
    assert signed_in.status_code == 303
    assert (
        runner.invoke(args=["users", "set-password", "nobody", "--password", "x" * 12]).exit_code
        != 0
    )
