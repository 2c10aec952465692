import os

import pytest

from qwq.agent.files import FileTools
from qwq.agent.tools import ToolError
from qwq.utils.errors import UsageError


@pytest.fixture()
def tree(tmp_path):
    root = tmp_path / "root"
    (root / "docs" / "deep").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\nbeta\ngamma\n")
    (root / "docs" / "notes.md").write_text("# Notes\nThe secret word is swordfish.\n")
    (root / "docs" / "deep" / "x.py").write_text("print('swordfish')\n")
    (root / "bin.dat").write_bytes(b"\x00\x01\x02swordfish")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwords.txt").write_text("swordfish-outside\n")
    os.symlink(outside / "passwords.txt", root / "link_out.txt")
    os.symlink(outside, root / "dirlink")
    os.symlink(root / "a.txt", root / "docs" / "link_in.txt")
    return root


def test_read_list_search(tree):
    ft = FileTools(tree)
    assert ft.read_file("a.txt") == "1: alpha\n2: beta\n3: gamma"
    assert ft.read_file("a.txt", start_line=2, max_lines=1) == "2: beta\n[... 1 more lines]"
    assert ft.read_file("./docs/notes.md").startswith("1: # Notes")
    listing = ft.list_files().splitlines()
    assert listing == ["a.txt", "bin.dat", "docs/notes.md", "docs/deep/x.py"]
    hits = ft.search_files("swordfish").splitlines()
    assert hits == ["docs/notes.md:2: The secret word is swordfish.", "docs/deep/x.py:1: print('swordfish')"]
    assert ft.search_files("SWORD.*fish", regex=True, pattern="*.py") == "docs/deep/x.py:1: print('swordfish')"


@pytest.mark.parametrize("path", ["../outside/passwords.txt", "docs/../../outside/passwords.txt", "..", "docs/.."])
def test_dotdot_is_refused(tree, path):
    with pytest.raises(ToolError, match=r"'\.\.' is not allowed"):
        FileTools(tree).read_file(path)


def test_absolute_paths_are_refused(tree):
    with pytest.raises(ToolError, match="absolute paths are not allowed"):
        FileTools(tree).read_file(str(tree / "a.txt"))
    with pytest.raises(ToolError, match="absolute"):
        FileTools(tree).read_file("/etc/passwd")


@pytest.mark.parametrize("path", ["link_out.txt", "dirlink/passwords.txt", "docs/link_in.txt"])
def test_symlinks_are_not_followed(tree, path):
    with pytest.raises(ToolError, match="symbolic link"):
        FileTools(tree).read_file(path)


def test_listing_and_search_skip_symlinks(tree):
    ft = FileTools(tree)
    assert "link_out.txt" not in ft.list_files()
    assert "dirlink" not in ft.list_files()
    assert "outside" not in ft.search_files("swordfish")
    with pytest.raises(ToolError, match="symbolic link"):
        ft.list_files("dirlink")


def test_root_itself_may_be_a_symlink_to_a_directory(tree, tmp_path):
    os.symlink(tree, tmp_path / "alias")
    assert FileTools(tmp_path / "alias").read_file("a.txt").startswith("1: alpha")


def test_errors_are_clear(tree):
    ft = FileTools(tree)
    with pytest.raises(ToolError, match="does not exist"):
        ft.read_file("nope.txt")
    with pytest.raises(ToolError, match="is a directory"):
        ft.read_file("docs")
    with pytest.raises(ToolError, match="binary"):
        ft.read_file("bin.dat")
    with pytest.raises(ToolError, match="not a directory"):
        ft.read_file("a.txt/x")
    with pytest.raises(UsageError):
        FileTools(tree / "a.txt")


def test_tool_wrappers_return_errors_to_the_model(tree):
    read, _, _ = FileTools(tree).tools()
    r = read({"path": "../outside/passwords.txt"})
    assert r.is_error and "swordfish" not in r.content
