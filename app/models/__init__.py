"""The database models, one module per aggregate."""

from app.models.audit import AuditEvent
from app.models.chat import ChatMessage, ChatMute, ChatRead, ChatReport, ChatRoom
from app.models.course import Course
from app.models.enrollment import Enrollment, EnrollmentStatus
from app.models.feedback import Feedback
from app.models.material import Material
from app.models.notification import Notification, NotificationChoice, NotificationDigest
from app.models.outbox import OutboxMessage
from app.models.page_version import PageVersion
from app.models.search import SearchChange, SearchIndexState
from app.models.user import Role, User

__all__ = [
    "AuditEvent",
    "ChatMessage",
    "ChatMute",
    "ChatRead",
    "ChatReport",
    "ChatRoom",
    "Course",
    "Enrollment",
    "EnrollmentStatus",
    "Feedback",
    "Material",
    "Notification",
    "NotificationChoice",
    "NotificationDigest",
    "OutboxMessage",
    "PageVersion",
    "Role",
    "SearchChange",
    "SearchIndexState",
    "User",
]
