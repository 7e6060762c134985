"""The one reading of a payload's repository (app/gitea_repository.py), shared by the web and the fold."""

from __future__ import annotations

from typing import Any

import pytest

from app.gitea_repository import RepoRef, RepositoryError, repository_of


@pytest.mark.parametrize(
    ("repository", "expected"),
    [
        (
            {"id": 7, "name": "shop", "full_name": "acme/shop", "owner": {"login": "acme"}},
            RepoRef(7, "acme", "shop", "acme/shop"),
        ),
        ({"id": 7, "full_name": "acme/shop", "owner": {"login": "acme"}}, RepoRef(7, "acme", "shop", "acme/shop")),  # no name
        ({"full_name": "acme/shop"}, RepoRef(None, "acme", "shop", "acme/shop")),
        ({"name": "shop", "owner": {"username": "acme"}}, RepoRef(None, "acme", "shop", "acme/shop")),  # older Gitea
        ({"id": 7, "owner": {"login": 12}, "full_name": "acme/shop"}, RepoRef(7, "acme", "shop", "acme/shop")),  # non-string
        ({"id": 7, "owner": {"login": "  "}, "full_name": "acme/shop"}, RepoRef(7, "acme", "shop", "acme/shop")),  # blank
        ({"id": 7, "name": " Shop ", "owner": {"login": "ACME"}}, RepoRef(7, "ACME", "Shop", "ACME/Shop")),
        ({"id": True, "full_name": "acme/shop"}, RepoRef(None, "acme", "shop", "acme/shop")),  # a boolean is no id
        ({"id": 2**63, "full_name": "acme/shop"}, RepoRef(None, "acme", "shop", "acme/shop")),
        ({"id": 7, "full_name": "not-a-full-name"}, RepoRef(7, None, None, None)),
        ({"id": 0}, None),
        ({"name": "shop"}, None),
        ("acme/shop", None),
    ],
)
def test_repository_of_normalises_once(repository: Any, expected: RepoRef | None) -> None:
    assert repository_of({"repository": repository}) == expected


def test_no_repository_at_all() -> None:
    assert repository_of({}) is None
    assert repository_of({"repository": None}) is None


@pytest.mark.parametrize(
    "repository",
    [
        {"id": 7, "owner": {"login": "evil"}, "full_name": "victim/shop"},  # the forgery of issue 11
        {"id": 7, "name": "tools", "owner": {"login": "victim"}, "full_name": "victim/shop"},
        {"owner": {"username": "evil"}, "full_name": "victim/shop"},
    ],
)
def test_fields_naming_two_repositories_are_refused(repository: dict[str, Any]) -> None:
    with pytest.raises(RepositoryError, match="two repositories"):
        repository_of({"repository": repository})


def test_names_compare_case_insensitively() -> None:
    upper = repository_of({"repository": {"owner": {"login": "ACME"}, "full_name": "acme/SHOP", "name": "shop"}})
    assert upper is not None and upper.key == "acme/shop"
    assert upper.describe() == "acme/SHOP"
    assert RepoRef(7, None, None, None).describe() == "id 7"
