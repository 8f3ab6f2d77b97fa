"""The dashboard: courses I teach, am enrolled in and wait for, in a fixed number of queries."""

from __future__ import annotations

import re

from app.blueprints.enrollments import services as enrolment


def test_student_dashboard(client, make_user, make_course, login_as):
    sam = make_user("sam")
    open_course = make_course(title="Open Course", capacity=5)
    full_course = make_course(title="Full Course", capacity=1)
    enrolment.enroll(make_user("early"), full_course.id)
    enrolment.enroll(sam, open_course.id)
    enrolment.enroll(sam, full_course.id)
    login_as(sam)
    html = client.get("/dashboard").get_data(as_text=True)
    enrolled = html.split('id="enrolled"')[1].split("</section>")[0]
    waiting = html.split('id="waitlisted"')[1].split("</section>")[0]
    assert "Open Course" in enrolled and "Full Course" not in enrolled
    assert "Full Course" in waiting and 'data-waitlist-position="1"' in waiting


def test_teacher_dashboard_lists_drafts_too(client, make_user, make_course, login_as):
    teacher = make_user("tina", role="teacher")
    make_course(teacher, title="Published One")
    make_course(teacher, title="Draft One", published=False)
    login_as(teacher)
    teaching = client.get("/dashboard").get_data(as_text=True).split('id="teaching"')[1]
    assert "Published One" in teaching and "Draft One" in teaching


def test_dashboard_queries_do_not_grow_with_courses(
    client, make_user, make_course, login_as, count_queries
):
    sam = make_user("sam")
    teacher = make_user("t", role="teacher")
    login_as(sam)
    client.get("/dashboard")  # the signed-in person is kept from here on, in both counts alike
    counts = []
    for batch in (2, 12):
        for n in range(batch):
            course = make_course(teacher, title=f"C{n}", capacity=1 if n % 2 else 10)
            if n % 2:
                enrolment.enroll(make_user(), course.id)
            enrolment.enroll(sam, course.id)
        with count_queries() as statements:
            html = client.get("/dashboard").get_data(as_text=True)
        counts.append(len(statements))
    assert len(re.findall(r"data-course-id=", html)) == 14
    assert counts[0] == counts[1] <= 8, counts
