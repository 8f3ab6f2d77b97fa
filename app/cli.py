"""Command-line tasks: `flask users create|set-role|set-password|deactivate|reactivate` (each
audited as done by the command line) and `flask seed-demo`."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from app import audit, backup
from app.blueprints.admin import services as admin
from app.blueprints.auth import services as accounts
from app.errors import DomainError, InvalidInput
from app.extensions import db
from app.models import Role, User

ROLES = click.Choice([role.value for role in Role])

users_cli = AppGroup("users", help="Manage accounts.")

DEMO_PASSWORD = "campus-demo-2026"  # noqa: S105 - printed for everyone by make run
DEMO_USERS = [
    ("admin", "Ada Admin", Role.ADMIN),
    ("teacher1", "Tomás Teacher", Role.TEACHER),
    ("teacher2", "Tara Okafor", Role.TEACHER),
    *[
        (f"student{n}", name, Role.STUDENT)
        for n, name in enumerate(
            [
                "Sam Student",
                "Lena Fischer",
                "Noah Williams",
                "Aisha Khan",
                "Mateo García",
                "Yuki Tanaka",
                "Olivia Brown",
                "Kwame Mensah",
                "Chloé Martin",
                "Ivan Petrov",
            ],
            start=1,
        )
    ],
]


@users_cli.command("create")
@click.option("--username", prompt=True)
@click.option("--email", prompt=True)
@click.option("--full-name", prompt=True)
@click.option("--role", type=ROLES, default=Role.STUDENT.value, show_default=True)
@click.password_option()
def create_user(username: str, email: str, full_name: str, role: str, password: str) -> None:
    """Create an account; the only way to make an admin."""
    from app.blueprints.auth.forms import RegistrationForm

    form = RegistrationForm(
        meta={"csrf": False},
        formdata=MultiDict(
            {
                "username": username,
                "email": email,
                "full_name": full_name,
                "password": password,
                "password_confirm": password,
            }
        ),
    )
    form.validate()
    errors = {name: messages[0] for name, messages in form.errors.items()}
    problem = accounts.password_problem(password, username, email)
    errors |= accounts.taken(username, email) | ({"password": problem} if problem else {})
    if errors:
        raise click.ClickException("; ".join(f"{k}: {v}" for k, v in errors.items()))
    try:
        user = accounts.create_user(
            form.username.data, form.email.data, form.full_name.data, password, role
        )
    except InvalidInput as error:
        raise click.ClickException(error.message) from error
    audit.record("account_created", audit.COMMAND_LINE, user, details=role)
    db.session.commit()
    click.echo(f"Created {user.role} {user.username} <{user.email}>.")


@users_cli.command("set-role")
@click.argument("email")
@click.argument("role", type=ROLES)
def set_role(email: str, role: str) -> None:
    """Give the account with EMAIL another ROLE; its sessions end. The last active admin
    keeps the role."""
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise click.ClickException(f"No account has the email {email}.")
    user = run_service(admin.change_role, audit.COMMAND_LINE, user.username, role)
    click.echo(f"{user.username} is now {user.role}; their sessions have ended.")


@users_cli.command("deactivate")
@click.argument("username")
def deactivate(username: str) -> None:
    """The account USERNAME can no longer sign in; its sessions end at once."""
    user = run_service(admin.deactivate, audit.COMMAND_LINE, username)
    click.echo(f"{user.username} is deactivated and signed out everywhere.")


@users_cli.command("reactivate")
@click.argument("username")
def reactivate(username: str) -> None:
    """The account USERNAME can sign in again."""
    user = run_service(admin.reactivate, audit.COMMAND_LINE, username)
    click.echo(f"{user.username} can sign in again.")


def run_service(service, *args):
    """A service's refusal as the command's error message."""
    try:
        return service(*args)
    except DomainError as error:
        raise click.ClickException(error.message) from error


DEMO_COURSES = [
    # (teacher, title, capacity, published, keywords, description, students enrolling in order)
    (
        "teacher1",
        "Introduction to Astronomy",
        30,
        True,
        "astronomy, science, space",
        "Stars, planets and galaxies, from the naked eye to the largest telescopes.\n"
        "Evening sessions at the school observatory when the sky is clear.",
        [1, 2, 3, 4, 5, 6],
    ),
    (
        "teacher1",
        "Creative Writing Workshop",
        3,
        True,
        "writing, english, stories",
        "Short stories and poems, read aloud and discussed. Small group: places are limited.",
        [2, 7, 8, 9, 10],
    ),
    (
        "teacher2",
        "Python for Beginners",
        None,
        True,
        "programming, python, computing",
        "Variables, loops and functions, one small program a week. No experience needed.",
        [1, 3, 5, 7, 9],
    ),
    (
        "teacher2",
        "World History: The Silk Roads",
        20,
        True,
        "history, trade, geography",
        "How goods, ideas and religions travelled between China and the Mediterranean.",
        [4, 6],
    ),
    (
        "teacher2",
        "Chamber Choir",
        16,
        True,
        "music, singing",
        "Rehearsals on Tuesdays; a concert at the end of term.",
        [],
    ),
    (
        "teacher1",
        "Advanced Astrophysics (draft)",
        15,
        False,
        "physics, astronomy",
        "Being prepared for next term.",
        [],
    ),
]


@users_cli.command("set-password")
@click.argument("login")
@click.password_option()
def set_password(login: str, password: str) -> None:
    """Give the account LOGIN (username or email) a new password; its sessions end."""
    user = accounts.find_by_login(login)
    if user is None:
        raise click.ClickException(f"No account has the username or email {login}.")
    problem = accounts.password_problem(password, user.username, user.email)
    if problem or not 10 <= len(password) <= 128:
        raise click.ClickException(problem or "Use 10 to 128 characters.")
    user.password_hash = accounts.hash_password(password)
    audit.record("password_set", audit.COMMAND_LINE, user)
    accounts.end_sessions(user)
    click.echo(f"{user.username} has a new password; their sessions have ended.")


def seed_demo() -> bool:
    """Demo accounts and courses, only into an empty database. True when it added them."""
    if db.session.scalar(select(func.count()).select_from(User)):
        return False
    password_hash = accounts.hash_password(DEMO_PASSWORD)
    for username, full_name, role in DEMO_USERS:
        db.session.add(
            User(
                username=username,
                email=f"{username}@campus.example",
                full_name=full_name,
                role=role.value,
                password_hash=password_hash,
                bio="",
            )
        )
    db.session.commit()
    seed_demo_courses()
    return True


def seed_demo_courses() -> None:
    from app.blueprints.courses.services import CourseDraft, create
    from app.blueprints.enrollments.services import enroll

    people = {user.username: user for user in db.session.scalars(select(User))}
    for teacher, title, capacity, published, keywords, description, students in DEMO_COURSES:
        words = [word.strip() for word in keywords.split(",")]
        draft = CourseDraft(title, description, words, capacity, published)
        course_id = create(people[teacher], draft).id
        for number in students:
            enroll(db.session.get(User, people[f"student{number}"].id), course_id)
        if students:
            seed_demo_chat(course_id, people[teacher].id, people[f"student{students[0]}"].id)


def seed_demo_chat(course_id: int, teacher_id: int, student_id: int) -> None:
    """A short conversation in each course room that has students, so chat is not empty."""
    from app.models import ChatMessage, ChatRoom

    room_id = db.session.scalar(select(ChatRoom.id).where(ChatRoom.course_id == course_id))
    db.session.add_all(
        ChatMessage(room_id=room_id, author_id=author_id, body=body)
        for author_id, body in [
            (teacher_id, "Welcome, everyone! Ask your questions about the course here."),
            (student_id, "Thank you! Where do we find the reading for week one?"),
            (teacher_id, "In Materials, on the course page. Read it before Monday."),
        ]
    )
    db.session.commit()


def print_demo_accounts() -> None:
    click.echo(f"Demo accounts (password for all: {DEMO_PASSWORD}):")
    for username, full_name, role in DEMO_USERS:
        email = f"{username}@campus.example"
        click.echo(f"  {role.value:<8} {username:<10} {email:<25} {full_name}")


@click.command("backup")
@click.option(
    "--to",
    "to",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the archive (default: instance/backups).",
)
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    default=None,
    help="Keep only this many newest archives in the folder.",
)
def backup_command(to: Path | None, keep: int | None) -> None:
    """One archive of the database (a consistent snapshot, taken while Campus serves) and
    every stored file, with a manifest of their SHA-256."""
    from flask import current_app

    folder = to or Path(current_app.instance_path) / "backups"
    try:
        written = backup.backup(folder, keep, progress=click.echo)
    except backup.BackupError as error:
        raise click.ClickException(str(error)) from error
    click.echo(
        f"Wrote {written.path} ({written.files} files, {written.bytes / 1e6:.1f} MB of uploads)"
        f" in {written.seconds:.1f} s."
    )


@click.command("restore")
@click.argument("archive", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace a database and files that are not empty.")
def restore_command(archive: Path, force: bool) -> None:
    """Fill an empty database and upload folder from ARCHIVE, every member checked first;
    then the search index is rebuilt."""
    try:
        manifest = backup.restore(archive, force=force, progress=click.echo)
    except backup.BackupError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"Restored the backup of {manifest['created_at']} ({manifest['files']} files).")


notifications_cli = AppGroup("notifications", help="Mail about notifications.")


@notifications_cli.command("send-digests")
def send_digests_command() -> None:
    """Mail each person with `daily` choices what they have not read since their last digest
    (run once a day; running it twice sends nothing new). Needs PUBLIC_URL for the links."""
    from flask import current_app

    from app import mail
    from app.blueprints.notifications import services as notifications

    app = current_app._get_current_object()
    base = app.config.get("PUBLIC_URL")
    if not base:
        raise click.ClickException("Set PUBLIC_URL: the links in digests need it.")
    app.extensions["campus.mail"].stop()  # this command sends them itself, then ends
    with app.test_request_context(base_url=base):
        written = notifications.send_digests()
    sent = mail.send_due()
    click.echo(f"{written} digests written; {sent} mails sent (the rest are retried by the app).")


chat_cli = AppGroup("chat", help="Chat upkeep.")


@chat_cli.command("purge")
def chat_purge_command() -> None:
    """Erase the kept text of chat messages removed more than 30 days ago (run daily)."""
    from app.blueprints.chat import safety

    erased = safety.purge()
    click.echo(f"Erased the text of {erased} removed messages.")


def register_cli(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(backup_command)
    app.cli.add_command(restore_command)

    app.cli.add_command(notifications_cli)
    app.cli.add_command(chat_cli)

    @app.cli.command("sweep-uploads")
    def sweep_uploads_command() -> None:
        """Remove half-written uploads and files no material points to (run while stopped)."""
        from app.blueprints.materials.services import sweep

        click.echo(f"Removed {sweep(app)} leftover files.")

    @app.cli.command("seed-demo")
    def seed_demo_command() -> None:
        """Load demo accounts into an empty database and print them."""
        if seed_demo():
            click.echo(
                f"Loaded the demo data: {len(DEMO_USERS)} people, {len(DEMO_COURSES)} courses."
            )
        else:
            click.echo("The database already has accounts; demo data not loaded.")
        print_demo_accounts()
