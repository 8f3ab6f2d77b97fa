"""Fixtures of the chat tests."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.blueprints.enrollments.services import enroll
from app.extensions import db
from app.models import ChatRoom


@pytest.fixture
def room(make_user, make_course):
    """A course room with its teacher and two enrolled students; the room id, and the people."""
    teacher = make_user("tomas", role="teacher", full_name="Tomás Teacher")
    course = make_course(teacher, title="Astronomy")
    ana, bo = make_user("ana", full_name="Ana Student"), make_user("bo", full_name="Bo Student")
    for student in (ana, bo):
        enroll(student, course.id)
    room_id = db.session.scalar(select(ChatRoom.id).where(ChatRoom.course_id == course.id))
    return room_id, teacher, ana, bo
