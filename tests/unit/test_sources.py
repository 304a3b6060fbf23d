"""Inventory sources: a folder on disk, a revision of a git repository (worktree or bare)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from reconciler.inventory.load import load_inventory
from reconciler.inventory.sources import FolderSource, GitSource, SourceError
from reconciler.model.problems import InventoryError
from reconciler.sandbox.site import git
from tests.unit.inventory_factory import group, write_inventory


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository whose first commit holds the base site under inventory/ and at the root."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write_inventory(root)
    write_inventory(root / "inventory")
    (root / "README.md").write_text("not inventory\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first")
    return root


def test_folder_source_reads_only_inventory_files(tmp_path: Path) -> None:
    root = write_inventory(
        tmp_path,
        files={
            "README.md": "x",
            "groups/.hidden.yaml": "x",
            "groups/nested/deep.yaml": "x",
            "other/thing.yaml": "x",
        },
    )
    source = FolderSource(root)
    assert sorted(source.read_files()) == [
        "groups/compute.yaml",
        "images/compute.yaml",
        "site.yaml",
    ]
    assert source.revision() == "working-tree"
    assert source.describe() == str(root)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such inventory folder"):
        FolderSource(tmp_path / "nowhere").read_files()


def test_git_head_loads_the_committed_revision_not_the_worktree(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    (repo / "groups" / "compute.yaml").write_text("this: [is not valid\n")
    (repo / "groups" / "gpu.yaml").write_text("name: gpu\n")  # untracked
    inventory = load_inventory(GitSource(repo))
    assert inventory.revision == head
    assert [g.name for g in inventory.groups] == ["compute"]
    with pytest.raises(InventoryError):
        load_inventory(FolderSource(repo))  # the working tree itself is broken


def test_git_older_revision_and_branch(repo: Path) -> None:
    first = git(repo, "rev-parse", "HEAD")
    write_inventory(repo, groups={"compute": group(image="compute@2024.11")})
    git(repo, "commit", "-q", "-am", "canary everything")
    git(repo, "tag", "v2")
    assert load_inventory(GitSource(repo, first)).groups[0].image == "compute@2024.10"
    assert load_inventory(GitSource(repo, "HEAD~1")).revision == first
    assert load_inventory(GitSource(repo, "main")).groups[0].image == "compute@2024.11"
    assert load_inventory(GitSource(repo, "v2")).groups[0].image == "compute@2024.11"


def test_git_invalid_revision_is_reported_with_its_problems(repo: Path) -> None:
    write_inventory(repo, groups={"compute": group(gateway="10.9.9.9")})
    git(repo, "commit", "-q", "-am", "bad gateway")
    with pytest.raises(InventoryError) as caught:
        load_inventory(GitSource(repo))
    assert [(p.file, p.field, p.line) for p in caught.value.problems] == [
        ("groups/compute.yaml", "gateway", 3)
    ]


def test_bare_repository(repo: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare)], check=True)
    inventory = load_inventory(GitSource(bare, "main"))
    assert inventory.revision == git(repo, "rev-parse", "HEAD")
    assert inventory.groups[0].name == "compute"


def test_subdir(repo: Path) -> None:
    write_inventory(repo / "inventory", groups={"compute": group(hostname="sub%d")})
    git(repo, "commit", "-q", "-am", "subdir differs")
    source = GitSource(repo, "HEAD", subdir="/inventory/")
    assert load_inventory(source).groups[0].hostname == "sub%d"
    assert sorted(source.read_files()) == [
        "groups/compute.yaml",
        "images/compute.yaml",
        "site.yaml",
    ]
    assert source.describe() == f"{repo}@HEAD:inventory"


def test_nested_subdir(repo: Path) -> None:
    write_inventory(repo / "sites" / "east")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "east")
    assert load_inventory(GitSource(repo, subdir="sites/east")).site.domain == "cluster.example"


def test_subdir_missing(repo: Path) -> None:
    with pytest.raises(SourceError, match="folder 'nope' does not exist in that commit"):
        GitSource(repo, subdir="nope").read_files()


@pytest.mark.parametrize("rev", ["no-such-branch", "0123456789abcdef0123456789abcdef01234567"])
def test_unknown_revision(repo: Path, rev: str) -> None:
    with pytest.raises(SourceError) as caught:
        load_inventory(GitSource(repo, rev))
    assert str(caught.value) == (
        f"{repo}: revision {rev!r} not found; give a branch, tag or commit that exists"
    )


def test_empty_repository_has_no_head(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    with pytest.raises(SourceError, match="revision 'HEAD' not found"):
        GitSource(tmp_path).revision()


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not a git repository"):
        GitSource(tmp_path).read_files()
    with pytest.raises(SourceError, match="not a git repository"):
        GitSource(tmp_path / "missing").read_files()


def test_git_yml_file_is_refused_like_on_disk(repo: Path) -> None:
    (repo / "groups" / "gpu.yml").write_text("name: gpu\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "yml")
    with pytest.raises(InventoryError) as caught:
        load_inventory(GitSource(repo))
    assert [p.file for p in caught.value.problems] == ["groups/gpu.yml"]


def test_subdir_that_is_a_file(repo: Path) -> None:
    with pytest.raises(SourceError, match=r"folder 'README\.md' does not exist in that commit"):
        GitSource(repo, subdir="README.md").read_files()
