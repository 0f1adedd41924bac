"""Who may see, replace, delete or re-label a document: the rules of README's "Who sees what", in one place.

A document owns its visibility (`groups`) and its owner (who created it); every version inherits them.

- **See**: an admin sees every document; anyone else a document without groups, or one that shares a
  group with them.
- **Change** (a new version, delete, change its groups): an admin, or the document's owner while they
  can still see it.
- **Groups given**: an admin may limit a document to any groups; anyone else only to groups they
  belong to (so nobody can plant text in a group they are not part of).
- **Names**: for each person a name means the documents they can see. Adding a file under a name
  becomes a new version of the visible document of that name they may change; if they see such
  documents but may change none, it is refused; if they see none, it is a new document, whatever
  exists out of their sight. So a refusal or an outcome never tells anyone about a document they
  cannot see.

Every check runs in the library call (or the queued job) that acts, never only in a page.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kb.auth import Actor, NotAuthorized, is_admin, may_see
from kb.config import Settings
from kb.records import Document


@dataclass(frozen=True)
class Rights:
    """What one person may do, judged once (when a request or a job is submitted)."""

    name: str
    groups: tuple[str, ...] = ()
    admin: bool = False

    @property
    def visible(self) -> tuple[str, ...] | None:
        """The groups whose restricted documents this person sees; None means all (admins)."""
        return None if self.admin else self.groups


def rights_of(actor: Actor, settings: Settings, name: str = "") -> Rights:
    """The actor's rights; `name` overrides the name kept as owner and uploader (`kb ingest --uploader`)."""
    return Rights(name=name or actor.name, groups=tuple(actor.groups), admin=is_admin(actor, settings))


def can_see(doc: Document, rights: Rights) -> bool:
    return may_see(doc.groups, rights.visible)


def can_change(doc: Document, rights: Rights) -> bool:
    """Replace, delete or re-label: admins, and the owner while the document is still visible to them."""
    return rights.admin or (doc.owner == rights.name and can_see(doc, rights))


def refusal(doc: Document, action: str) -> NotAuthorized:
    """Only for a document the person can see: naming its owner tells them nothing new."""
    return NotAuthorized(f"{action}: {doc.name} belongs to {doc.owner or 'an admin'}; only they or an admin may do that")


def check_groups(groups: Sequence[str], rights: Rights) -> tuple[str, ...]:
    """The groups, cleaned, if this person may limit a document to them; else NotAuthorized."""
    wanted = tuple(dict.fromkeys(g.strip() for g in groups if g.strip()))
    foreign = [g for g in wanted if g not in rights.groups]
    if foreign and not rights.admin:
        mine = ", ".join(rights.groups) or "none"
        raise NotAuthorized(
            f"only an admin may limit a document to groups you are not in ({', '.join(foreign)}); your groups: {mine}"
        )
    return wanted


def target_for(name: str, documents: Iterable[Document], rights: Rights) -> Document | None:
    """The document a file added under `name` becomes a new version of, or None for a new document.

    Raises NotAuthorized when the person sees documents of that name but may change none of them.
    Among several they may change (an admin sees all), their own comes first, then the oldest.
    """
    visible = [d for d in documents if d.name == name and d.status != "deleting" and can_see(d, rights)]
    changeable = [d for d in visible if can_change(d, rights)]
    if not changeable:
        if visible:
            raise refusal(visible[0], "adding a new version")
        return None
    return min(changeable, key=lambda d: (d.owner != rights.name, d.created_at, d.doc_id))
