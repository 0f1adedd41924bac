"""The catalog: documents, their versions, ingest outcomes, the job queue, feedback, the answers shown
and each user's conversations.

`SqliteCatalog` keeps them in one SQLite file in WAL mode, which several processes may open at once
(the app and `kb ingest`). Every write is one transaction, so a crash leaves the catalog either
before or after a change, never in between. A document is known by its id; its name is what people
call it and need not be unique (see kb.access: names are scoped by what each person can see).
"""

from kb.catalog.answers import AnswerLog
from kb.catalog.conversations import ConversationLog
from kb.catalog.database import MAX_ATTEMPTS, SCHEMA_VERSION, doc_id_for, new_doc_id, now
from kb.catalog.documents import Documents
from kb.catalog.feedback import FeedbackLog
from kb.catalog.jobs import Jobs
from kb.catalog.synced import SyncedFiles

__all__ = ["MAX_ATTEMPTS", "SCHEMA_VERSION", "SqliteCatalog", "doc_id_for", "new_doc_id", "now"]


class SqliteCatalog(Documents, Jobs, FeedbackLog, AnswerLog, ConversationLog, SyncedFiles):
    """The catalog in one SQLite file. Safe to share between threads and processes."""
