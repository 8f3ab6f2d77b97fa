"""Search at school-district size: 50,000 courses (80-word descriptions) and 100,000 users.
Time to rebuild the index; p50/p95 of 200 realistic course queries (one to three words, some
prefixes, some typos) through our search, against a SQL `LIKE '%word%'` scan of the same rows
in the same run; the process's memory. Goal: p95 at most 15 ms, ranked, for the ids and for
the whole page's data (the rows' query and the marks).

The index follows the database through `search_changes` (DESIGN.md "Search index fed from the
database"): the lag between a commit and its findability (p50/p99, the indexer of this process),
and 200 students enrolling at once on a course of the generated school through gunicorn (goal:
all answered in under 2 s, SQLite and PostgreSQL).

    .venv/bin/python bench/bench_search.py [--courses 50000] [--users 100000] [--rush 200]

SQLite in a temporary folder, or the database in DATABASE_URL (its tables are replaced).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import server  # noqa: F401 - puts the project on sys.path

SUBJECTS = """astronomy biology chemistry physics geology history geography literature poetry
music choir painting drawing sculpture pottery photography film theatre dance python java
programming robotics electronics mathematics algebra geometry statistics calculus economics
business accounting marketing philosophy ethics psychology sociology spanish french german
latin chinese japanese english writing journalism debate cooking nutrition gardening ecology
oceans climate volcanoes weather football tennis swimming chess design architecture""".split()  # noqa: SIM905 - a list of words reads best as words
LEVELS = [
    "introduction",
    "advanced",
    "beginners",
    "intermediate",
    "workshop",
    "foundations",
    "applied",
    "modern",
    "ancient",
    "practical",
    "creative",
    "history",
    "of",
    "the",
    "for",
    "and",
    "to",
    "with",
    "in",
]
FIRST = """Ada Alan Grace Linus Lena Noah Aisha Mateo Yuki Olivia Kwame Chloé Ivan Sam Tara
Tomás Maria Jonas Fatima Omar Mei Ravi Sofia Lucas Emma Liam Zara Hugo Nina Felix""".split()  # noqa: SIM905 - a list of words reads best as words
LAST = """Lovelace Turing Hopper Fischer Williams Khan García Tanaka Brown Mensah Martin Petrov
Okafor Smith Müller Rossi Novak Silva Kim Nguyen Cohen Ali Jensen Dubois Costa Sato""".split()  # noqa: SIM905 - a list of words reads best as words


def vocabulary() -> list[str]:
    """English words, most frequent first: those of Python's own documentation (pydoc's
    topics), which has the long tail of a real vocabulary."""
    import re
    from collections import Counter
    from pydoc_data.topics import topics

    counts = Counter(re.findall(r"[a-z]{3,14}", " ".join(topics.values()).lower()))
    return [word for word, _n in counts.most_common()]


def zipf_sampler(rng: random.Random, words: list[str]):
    weights = [1 / (rank + 1) for rank in range(len(words))]
    cumulative, total = [], 0.0
    for weight in weights:
        total += weight
        cumulative.append(total)

    def sample(k: int) -> list[str]:
        return rng.choices(words, cum_weights=cumulative, k=k)

    return sample


def generate(db, courses: int, users: int, rng: random.Random) -> dict:
    """Rows written with plain INSERTs: the session events (incremental indexing) stay out."""
    from app.models import Course, Enrollment, User

    vocab = vocabulary()
    prose = zipf_sampler(rng, vocab)
    teachers = max(1, users // 50)
    people = []
    for n in range(users):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        people.append({
            "id": n + 1, "username": f"{first.lower()}.{last.lower()}{n}"[:32],
            "email": f"{first.lower()}{n}@school{n % 40}.example", "full_name": f"{first} {last}",
            "bio": "", "role": "teacher" if n < teachers else "student", "password_hash": "x",
            "session_version": 1,
        })  # fmt: skip
    db.session.execute(User.__table__.insert(), people)
    rows = []
    for n in range(courses):
        subject = rng.choice(SUBJECTS)
        title = " ".join([rng.choice(LEVELS), subject, *prose(rng.choice((0, 1, 2)))]).title()
        keywords = ", ".join({subject, *prose(2), rng.choice(SUBJECTS)})
        rows.append({
            "id": n + 1, "title": title[:120], "description": " ".join(prose(80)),
            "keywords": keywords, "published": rng.random() < 0.9, "capacity": None,
            "teacher_id": rng.randrange(1, teachers + 1),
        })  # fmt: skip
    db.session.execute(Course.__table__.insert(), rows)
    enrolments = [
        {"course_id": rng.randrange(1, courses + 1), "student_id": student, "status": "enrolled"}
        for student in range(teachers + 1, users + 1, 3)
    ]
    db.session.execute(Enrollment.__table__.insert(), enrolments)
    db.session.commit()
    return {"courses": rows, "users": people, "vocab": vocab}


def reread(db) -> dict:
    """The rows an earlier run generated, as `generate` returns them."""
    from sqlalchemy import select

    from app.models import Course, User

    columns = (Course.title, Course.keywords, Course.description)
    return {
        "courses": [row._asdict() for row in db.session.execute(select(*columns))],
        "users": [row._asdict() for row in db.session.execute(select(User.full_name))],
    }


def typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 1)
    kind = rng.choice(("swap", "drop", "change"))
    if kind == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == "drop":
        return word[:i] + word[i + 1 :]
    return word[:i] + rng.choice("aeioustrn") + word[i + 1 :]


def realistic_queries(data: dict, rng: random.Random, count: int = 200) -> list[tuple[str, str]]:
    """(kind, query): words people type, taken from titles, keywords, descriptions and names."""
    queries = []
    for n in range(count):
        course = rng.choice(data["courses"])
        source = rng.choice(("title", "title", "keywords", "description", "teacher"))
        if source == "teacher":
            words = rng.choice(data["users"][: max(1, len(data["users"]) // 50)])["full_name"]
            words = words.split()
        elif source == "keywords":
            words = course["keywords"].split(", ")
        else:
            words = course[source].lower().split()
        words = [w for w in words if len(w) > 2] or ["astronomy"]
        start = rng.randrange(len(words))
        picked = words[start : start + rng.choice((1, 1, 2, 2, 3))]
        kind = "words"
        if n % 4 == 1 and len(picked[-1]) > 4:
            picked[-1] = picked[-1][: rng.randrange(2, 5)]
            kind = "prefix"
        elif n % 7 == 3 and len(picked[0]) >= 5:
            picked[0] = typo(picked[0], rng)
            kind = "typo"
        queries.append((kind, " ".join(picked)))
    return queries


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def timed(action, queries) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"all": []}
    for kind, q in queries:
        began = time.perf_counter()
        action(q)
        elapsed = (time.perf_counter() - began) * 1000
        times["all"].append(elapsed)
        times.setdefault(kind, []).append(elapsed)
    return times


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def report(name: str, times: dict[str, list[float]]) -> None:
    parts = [
        f"{kind} p50 {statistics.median(v):6.1f} ms p95 {percentile(v, 95):7.1f} ms (n={len(v)})"
        for kind, v in times.items()
    ]
    print(f"{name:<28}" + " | ".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--courses", type=int, default=50_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--reuse", metavar="WORKDIR", help="the rows and index of an earlier run")
    parser.add_argument("--lag", type=int, default=100, help="changes timed to findability")
    parser.add_argument("--rush", type=int, default=200, help="students enrolling at once")
    parser.add_argument("--redis", metavar="URL", help="serve the rush with Redis (and so "
                        "gunicorn.conf.py's several workers) instead of one worker")  # fmt: skip
    args = parser.parse_args()

    workdir = Path(args.reuse or tempfile.mkdtemp(prefix="campus-bench-search-"))
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{workdir / 'bench.db'}"
    from sqlalchemy import or_, select

    from app import create_app, search
    from app.blueprints.search import services
    from app.database import statements_alone
    from app.extensions import db
    from app.models import Course, User

    index_dir = workdir / "index"
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=database_url,
                     SEARCH_INDEX_DIR=str(index_dir), SEARCH_CHECK_ON_START=False)  # fmt: skip
    rng = random.Random(args.seed)
    with app.app_context():
        if args.reuse:
            data = reread(db)
            rng.random()
        else:
            db.drop_all()
            db.create_all()
            began = time.perf_counter()
            data = generate(db, args.courses, args.users, rng)
            print(f"generated {args.courses:,} courses and {args.users:,} users in "
                  f"{time.perf_counter() - began:.1f} s ({db.engine.dialect.name})")  # fmt: skip
        before = rss_mb()
        if not args.reuse:
            began = time.perf_counter()
            counts = search.rebuild(app)
            elapsed = time.perf_counter() - began
            size = sum(f.stat().st_size for f in index_dir.rglob("*") if f.is_file()) / 2**20
            print(f"reindex: {elapsed:.1f} s for {counts}; index {size:.0f} MB on disk")
        queries = realistic_queries(data, rng)
        del data
        print("queries, e.g.:", ", ".join(repr(q) for _k, q in queries[:8]))

        def whoosh_ids(q: str) -> None:
            search.courses(q, "", None, 1, services.PAGE_SIZE)

        anonymous = type("Visitor", (), {"is_authenticated": False, "id": None})()

        def whole_service(q: str) -> None:
            # As the page runs it (@reads_alone): on PostgreSQL without BEGIN and ROLLBACK.
            with statements_alone(db.session()):
                services.find_courses(anonymous, services.CourseQuery(q=q), 1)
            db.session.rollback()

        columns = (Course.title, Course.description, Course.keywords, User.full_name)

        def like(q: str) -> None:
            conditions = [or_(*(c.ilike(f"%{word}%") for c in columns)) for word in q.split()]
            statement = (
                select(Course.id)
                .join(User, User.id == Course.teacher_id)
                .where(Course.published, *conditions)
                .limit(services.PAGE_SIZE)
            )
            db.session.execute(statement).all()
            db.session.rollback()

        whoosh_ids("warm up")  # opens the searcher once, as the first request of a process does
        for name, action in (
            ("LIKE scan (baseline)", like),
            ("whoosh: ranked ids", whoosh_ids),
            ("whoosh + rows + marks", whole_service),
        ):
            report(name, timed(action, queries))
        found = sum(1 for _k, q in queries if search.courses(q, "", None, 1, 20).ids)
        print(f"queries with results: {found} of {len(queries)}")
        unbounded = unbounded_pages(queries)
        print(f"pages as ranked without the time budgets: {agreement(queries, unbounded)}")

        people = [(k, q.split()[0][:6]) for k, q in queries[:100]]
        report("whoosh: users", timed(lambda q: search.users(q, None, None, 1, 20), people))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        stage = "the rows read back" if args.reuse else "the reindex"
        print(f"memory of this process: RSS {before:.0f} MB with the generated rows; "
              f"peak {peak:.0f} MB ({stage})")  # fmt: skip
        if args.lag:
            findability_lag(app, args.lag, waited_for=True)
            findability_lag(app, args.lag, waited_for=False)
            # The index as a server's is after a day of edits: the edited courses in a
            # segment of their own (folded once the edits stop), their old versions deleted.
            layout = folded_layout(app)
            report(f"after {2 * args.lag} edits: page", timed(whole_service, queries))
            unbounded = unbounded_pages(queries)  # this index's own, after the edits
            print(f"  ({layout}); as ranked without the budgets: "
                  f"{agreement(queries, unbounded)}")  # fmt: skip
        (workdir / "queries.json").write_text(json.dumps([q for _k, q in queries]))
        child = subprocess.run(
            [sys.executable, __file__, "--worker", str(workdir), database_url],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        print(child.stdout.strip())
        app.extensions["campus.search"].indexer.stop()  # the server's indexer takes over
        if args.rush:
            rush(app, database_url, str(index_dir), args.rush, args.redis)


def findability_lag(app, changes: int, waited_for: bool) -> None:
    """Commit a course's new title, then search for it until it is found: the time from the
    commit's start, as a visitor of this server sees it. `waited_for`: as a course edit's
    request commits (the indexer is woken at once, and the commit returns once the change is
    applied); otherwise as an enrolment's (nobody waits: the indexer gathers such changes for
    SEARCH_LAZY_SECONDS)."""
    from sqlalchemy import func, select

    from app import search
    from app.extensions import db
    from app.models import Course, SearchChange

    indexer = app.extensions["campus.search"].indexer
    ids = db.session.scalars(select(Course.id).order_by(Course.id).limit(changes)).all()
    lags = []
    for n, course_id in enumerate(ids):
        word = f"zqx{n}lag{int(waited_for)}"
        course = db.session.get(Course, course_id)
        course.title, course.published = f"{course.title[:80]} {word}", True
        if not waited_for:
            search.do_not_wait()
        began = time.perf_counter()
        db.session.commit()
        change = db.session.scalar(select(func.max(SearchChange.id)))
        deadline = began + 10
        # Cheap until the indexer says it is applied, then the search itself.
        while not indexer.applied(change) or search.courses(word, "", None, 1, 20).ids != [
            course_id
        ]:
            if time.perf_counter() > deadline:
                raise SystemExit(f"change {n} not findable after 10 s")
            time.sleep(0.002)
        lags.append((time.perf_counter() - began) * 1000)
    kind = "waited for, as a course edit" if waited_for else "nobody waits, as an enrolment"
    print(f"commit -> findable ({changes} changes, {kind}; indexer elected: {indexer.elected}): "
          f"p50 {statistics.median(lags):.1f} ms, p99 {percentile(lags, 99):.1f} ms")  # fmt: skip


def unbounded_pages(queries) -> dict[str, list[int]]:
    """Each query's first page with no time budget: every match scored."""
    from app import search
    from app.search import queries as ranking

    budgets, ranking.BUDGETS = ranking.BUDGETS, (None, None)
    try:
        return {q: search.courses(q, "", None, 1, 20).ids for _k, q in queries}
    finally:
        ranking.BUDGETS = budgets


def agreement(queries, unbounded: dict[str, list[int]]) -> str:
    """How much of each unbounded first page the budgeted search shows (the order aside)."""
    from app import search

    shares = []
    for _kind, q in queries:
        best = set(unbounded[q])
        if best:
            shares.append(len(best & set(search.courses(q, "", None, 1, 20).ids)) / len(best))
    full = sum(1 for share in shares if share == 1)
    return (f"{statistics.mean(shares) * 100:.1f}% of their results on average, all of them "
            f"for {full} of {len(shares)} queries")  # fmt: skip


def folded_layout(app) -> str:
    """Wait for the indexer to fold the edits' segments; the courses index's layout."""
    indexer = app.extensions["campus.search"].indexer
    deadline = time.monotonic() + indexer.fold_seconds + 30
    with app.app_context():
        while True:
            with app.extensions["campus.search"].searching("courses") as searcher:
                leaves = searcher.reader().leaf_readers()
                deleted = sum(r.doc_count_all() - r.doc_count() for r, _offset in leaves)
            if len(leaves) <= 2 or time.monotonic() > deadline:
                return f"{len(leaves)} segments, {deleted} deleted documents"
            time.sleep(0.2)


RUSH_PASSWORD = "bench-rush-password"


def rush(app, database_url: str, index_dir: str, students: int, redis: str | None) -> None:
    """`students` of the generated school press "Enrol" at once on one of its courses (30
    seats), through gunicorn serving this database and index."""
    from concurrent.futures import ThreadPoolExecutor

    from bench_enroll import all_at_once
    from server import bench_environment, gunicorn
    from sqlalchemy import func, select, update

    from app import search
    from app.blueprints.auth.services import hash_password
    from app.extensions import db
    from app.models import Course, Enrollment, User
    from tests.live_client import LiveClient

    with app.app_context():
        crowded = (  # an earlier rush's course (--reuse): another one
            select(Enrollment.course_id).group_by(Enrollment.course_id).having(func.count() > 10)
        )
        course = db.session.scalar(
            select(Course).where(Course.published, Course.id.not_in(crowded)).order_by(Course.id)
        )
        course_id = course.id
        db.session.execute(update(Course).where(Course.id == course_id).values(capacity=30))
        taken = select(Enrollment.student_id).where(Enrollment.course_id == course_id)
        names = db.session.scalars(
            select(User.username)
            .where(User.role == "student", User.id.not_in(taken))
            .order_by(User.id.desc())
            .limit(students)
        ).all()
        db.session.execute(
            update(User)
            .where(User.username.in_(names))
            .values(password_hash=hash_password(RUSH_PASSWORD))
        )
        db.session.commit()
    env = bench_environment(DATABASE_URL=database_url, SEARCH_INDEX_DIR=index_dir,
                            LOGIN_ADDRESS_LIMIT="100000 per minute")  # fmt: skip
    if redis:
        env["REDIS_URL"] = redis  # gunicorn.conf.py then starts its several workers
    with gunicorn("wsgi:app", env, "/healthz") as url:
        clients = [LiveClient(url) for _ in names]
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda pair: pair[1].sign_in(pair[0], RUSH_PASSWORD),
                          zip(names, clients, strict=True)))  # fmt: skip
        page = f"/courses/{course_id}"
        views, _ = all_at_once(clients, lambda c: c.get(page))  # the baseline, same clients
        elapsed, statuses = all_at_once(clients, lambda c: c.post(f"{page}/enroll"))
        with app.app_context():
            search.wait_for_all(30)
            places = dict(db.session.execute(
                select(Enrollment.status, func.count())
                .where(Enrollment.course_id == course_id).group_by(Enrollment.status)
            ).all())  # fmt: skip
            members = search.users("", None, course_id, 1, 20).total
    serving = "Redis, gunicorn.conf.py's workers" if redis else "one worker"
    print(f"{len(names)} enrolments at once ({db_name(database_url)}, {serving}): {elapsed:.2f} s "
          f"(the same clients' {len(names)} views of the course page: {views:.2f} s), "
          f"statuses {sorted(set(statuses))}; {places}; the user index lists {members} "
          f"in the course")  # fmt: skip


def db_name(database_url: str) -> str:
    return database_url.split(":")[0]


def worker(workdir: Path, database_url: str) -> None:
    """What a web worker pays: a fresh process that opens the index and answers the queries
    through the search service."""
    from app import create_app
    from app.blueprints.search import services
    from app.extensions import db

    index_dir = str(workdir / "index")
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=database_url,
                     SEARCH_INDEX_DIR=index_dir, SEARCH_CHECK_ON_START=False)  # fmt: skip
    queries = json.loads((workdir / "queries.json").read_text())
    anonymous = type("Visitor", (), {"is_authenticated": False, "id": None})()
    with app.app_context():
        start = rss_mb()
        for q in queries:
            services.find_courses(anonymous, services.CourseQuery(q=q), 1)
            db.session.rollback()
        print(f"a fresh process answering the same queries: RSS {start:.0f} MB after start-up, "
              f"{rss_mb():.0f} MB after the 200 queries")  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(Path(sys.argv[2]), sys.argv[3])
    else:
        main()
