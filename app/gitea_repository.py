"""The repository a Gitea payload names, read in one place by the web (the project check at the door) and the
fold (issue task ids): one normalisation of Gitea's `repository` object.

Gitea writes `repository.id`, `repository.owner.login` (older versions `username`), `repository.name` and
`repository.full_name` ("owner/name"). A payload may lack any of them (system, user and organisation hooks
carry no repository) or carry values of the wrong type; what is not a usable value counts as missing:
- `id`: an integer (not a boolean) in 1 … 2^63-1;
- `owner`, `name`: non-blank strings, without surrounding spaces; owner and name come from `full_name` when
  either is missing; `full_name` is made from them when it is missing;
- names are compared case-insensitively, as Gitea does (`key` is the lowercased "owner/name").
Fields that name two different repositories (`owner.login`/`name` against `full_name`) are a contradiction:
`RepositoryError`, never a guess at which one is meant.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app import AiworkerError

_ID_MAX = 2**63 - 1
NAME_MAX = 255


class RepositoryError(AiworkerError, ValueError):
    """The payload's repository fields contradict each other (HTTP 400 at the door, ignored by the fold)."""


@dataclass(frozen=True, slots=True)
class RepoRef:
    """A repository as a payload names it; `owner`/`name`/`full_name` are None only when unknown."""

    id: int | None
    owner: str | None
    name: str | None
    full_name: str | None

    @property
    def key(self) -> str:
        """The lowercased "owner/name", or "" when the payload names no owner and name."""
        return f"{self.owner}/{self.name}".lower() if self.owner and self.name else ""

    def describe(self) -> str:
        """How messages name it: "owner/name (id 7)", "id 7", "owner/name"."""
        shown = self.full_name or (f"{self.owner}/{self.name}" if self.owner and self.name else "")
        if self.id is None:
            return shown or "no repository"
        return f"{shown} (id {self.id})" if shown else f"id {self.id}"


def _text(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    stripped = value.strip()
    return stripped[:NAME_MAX] if stripped else None


def _id(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= _ID_MAX else None


def repository_of(payload: Mapping[str, Any]) -> RepoRef | None:
    """The payload's repository, or None when it names none (no id and no owner/name).

    Raises RepositoryError when `owner.login`/`name` and `full_name` name different repositories.
    """
    repo = payload.get("repository")
    if not isinstance(repo, Mapping):
        return None
    owner_obj = repo.get("owner")
    owner_obj = owner_obj if isinstance(owner_obj, Mapping) else {}
    owner = _text(owner_obj.get("login")) or _text(owner_obj.get("username"))
    name, full_name = _text(repo.get("name")), _text(repo.get("full_name"))
    if full_name is not None:
        full_owner, slash, full_repo = full_name.partition("/")
        full_owner, full_repo = full_owner.strip(), full_repo.strip()
        if slash and full_owner and full_repo and "/" not in full_repo:
            if (owner is not None and owner.lower() != full_owner.lower()) or (
                name is not None and name.lower() != full_repo.lower()
            ):
                raise RepositoryError(
                    f"the payload's repository fields name two repositories: full_name {full_name!r} against "
                    f"owner {owner!r} and name {name!r}; Gitea never sends that, so the delivery is refused"
                )
            owner, name = owner or full_owner, name or full_repo
        elif owner is None or name is None:
            full_name = None  # not "owner/name": it can neither name the repository nor contradict it
    if owner and name and full_name is None:
        full_name = f"{owner}/{name}"[:NAME_MAX]
    repo_id = _id(repo.get("id"))
    if repo_id is None and not (owner and name):
        return None
    return RepoRef(repo_id, owner, name, full_name)
