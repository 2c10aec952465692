"""Read-only file tools over one user-given directory: `read_file`, `list_files`, `search_files`.

Confinement does not trust path strings. Absolute paths and `..` components are refused outright, and every path is
opened component by component from a descriptor of the root with O_NOFOLLOW, so a symlink anywhere on the way
(pointing inside or outside) is refused rather than followed, and a directory swapped for a symlink between a check
and the open cannot redirect the read. Listing and search walk with `os.fwalk(follow_symlinks=False)` and open each
file relative to its directory descriptor, the same way.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import re
import stat
from pathlib import Path, PurePosixPath

from qwq.agent.tools import Tool, ToolError
from qwq.utils.errors import UsageError

MAX_READ_BYTES = 256 * 1024
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)


class FileTools:
    def __init__(self, root: str | os.PathLike, *, max_read_bytes: int = MAX_READ_BYTES):
        root_path = Path(root)
        if not root_path.is_dir():
            raise UsageError(f"file tools: {root} is not a directory")
        self.root = root_path.resolve()
        self.max_read_bytes = max_read_bytes

    # ---------------------------------------------------------------------------------------------- path walking
    @staticmethod
    def _parts(path: str) -> list[str]:
        if not isinstance(path, str):
            raise ToolError("path must be a string")
        if "\x00" in path:
            raise ToolError("path contains a NUL byte")
        p = PurePosixPath(path.replace("\\", "/"))
        if p.is_absolute():
            raise ToolError(f"'{path}': absolute paths are not allowed; give a path relative to the directory")
        parts = [x for x in p.parts if x not in ("", ".")]
        if ".." in parts:
            raise ToolError(f"'{path}': '..' is not allowed (paths must stay inside the directory)")
        return parts

    def _open(self, path: str, *, directory: bool) -> int:
        """A descriptor for `path` under the root, walking one component at a time without following symlinks."""
        parts = self._parts(path)
        fd = os.open(self.root, _DIR_FLAGS)
        try:
            for i, part in enumerate(parts):
                last = i == len(parts) - 1
                flags = _DIR_FLAGS if (not last or directory) else _FILE_FLAGS
                try:
                    nxt = os.open(part, flags, dir_fd=fd)
                except OSError as exc:
                    shown = "/".join(parts[: i + 1])
                    if exc.errno == errno.ELOOP or (exc.errno == errno.ENOTDIR and
                                                    stat.S_ISLNK(os.lstat(part, dir_fd=fd).st_mode)):
                        raise ToolError(f"'{shown}' is a symbolic link; links are not followed") from None
                    if exc.errno == errno.ENOENT:
                        raise ToolError(f"'{shown}' does not exist") from None
                    if exc.errno == errno.ENOTDIR:
                        raise ToolError(f"'{shown}' is not a directory") from None
                    raise ToolError(f"'{shown}': {exc.strerror}") from None
                os.close(fd)
                fd = nxt
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _read_fd(self, fd: int, shown: str) -> str:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ToolError(f"'{shown}' is a directory (use list_files)")
        if not stat.S_ISREG(st.st_mode):
            raise ToolError(f"'{shown}' is not a regular file")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(self.max_read_bytes + 1)
        if b"\x00" in data[:8192]:
            raise ToolError(f"'{shown}' looks like a binary file")
        text = data[: self.max_read_bytes].decode("utf-8", errors="replace")
        if len(data) > self.max_read_bytes:
            text += f"\n[... file truncated at {self.max_read_bytes} bytes]"
        return text

    # ---------------------------------------------------------------------------------------------------- tools
    def read_file(self, path: str, start_line: int = 1, max_lines: int = 400) -> str:
        """Read a text file (a window of lines, numbered).

        Args:
            path: file path relative to the directory
            start_line: first line to show (1-based)
            max_lines: how many lines to show at most
        """
        if start_line < 1 or max_lines < 1:
            raise ToolError("start_line and max_lines must be >= 1")
        fd = self._open(path, directory=False)
        try:
            text = self._read_fd(fd, path)
        finally:
            os.close(fd)
        lines = text.splitlines()
        window = lines[start_line - 1: start_line - 1 + max_lines]
        if not window:
            return f"[{path}: {len(lines)} lines; nothing at line {start_line}]"
        body = "\n".join(f"{start_line + i}: {line}" for i, line in enumerate(window))
        rest = len(lines) - (start_line - 1 + len(window))
        return body + (f"\n[... {rest} more lines]" if rest > 0 else "")

    def _walk(self, path: str):
        """(relative dir, dir fd, file names) under `path`, symlinks neither followed nor listed."""
        fd = self._open(path, directory=True)
        base = "/".join(self._parts(path))
        try:
            for dirpath, dirnames, filenames, dirfd in os.fwalk(".", follow_symlinks=False, dir_fd=fd):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and
                                     not stat.S_ISLNK(os.lstat(d, dir_fd=dirfd).st_mode))
                files = sorted(n for n in filenames if not stat.S_ISLNK(os.lstat(n, dir_fd=dirfd).st_mode))
                rel = os.path.normpath(os.path.join(base, dirpath)) if base else os.path.normpath(dirpath)
                yield ("" if rel == "." else rel), dirfd, files
        finally:
            os.close(fd)

    def list_files(self, path: str = ".", pattern: str = "*", max_entries: int = 200) -> str:
        """List files under a directory (recursively), skipping hidden directories and symbolic links.

        Args:
            path: directory relative to the root
            pattern: glob on file names, e.g. *.py
            max_entries: how many paths to show at most
        """
        out = []
        for rel, _, files in self._walk(path):
            for name in files:
                if fnmatch.fnmatch(name, pattern):
                    out.append(f"{rel}/{name}" if rel else name)
                    if len(out) >= max_entries:
                        return "\n".join(out) + f"\n[... stopped at {max_entries} entries]"
        return "\n".join(out) if out else f"[no files matching {pattern!r}]"

    def search_files(self, query: str, path: str = ".", pattern: str = "*", regex: bool = False,
                     max_results: int = 50) -> str:
        """Search text files for a string (or a regular expression); prints path:line: text.

        Args:
            query: text to look for (case-insensitive)
            path: directory to search, relative to the root
            pattern: glob on file names, e.g. *.md
            regex: treat query as a regular expression
            max_results: how many matching lines to show at most
        """
        if not query:
            raise ToolError("query is empty")
        try:
            rx = re.compile(query if regex else re.escape(query), re.IGNORECASE)
        except re.error as exc:
            raise ToolError(f"invalid regular expression: {exc}") from None
        hits = []
        for rel, dirfd, files in self._walk(path):
            for name in files:
                if not fnmatch.fnmatch(name, pattern):
                    continue
                shown = f"{rel}/{name}" if rel else name
                try:
                    fd = os.open(name, _FILE_FLAGS, dir_fd=dirfd)
                except OSError:
                    continue
                try:
                    text = self._read_fd(fd, shown)
                except ToolError:
                    continue
                finally:
                    os.close(fd)
                for n, line in enumerate(text.splitlines(), 1):
                    if rx.search(line):
                        hits.append(f"{shown}:{n}: {line.strip()[:300]}")
                        if len(hits) >= max_results:
                            return "\n".join(hits) + f"\n[... stopped at {max_results} matches]"
        return "\n".join(hits) if hits else f"[no matches for {query!r}]"

    def tools(self) -> list[Tool]:
        from qwq.agent.tools import tool

        return [tool(self.read_file), tool(self.list_files), tool(self.search_files)]
