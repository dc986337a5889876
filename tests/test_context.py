"""Tests for loading contexts (every source kind) and describing them (metadata and hashing)."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from collections import OrderedDict
from typing import TYPE_CHECKING

import pytest

from rlm_kernel._context import ContextInfo, Documents, describe_context, load_context
from rlm_kernel.errors import ContextError, TrajectoryError

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small codebase: a nested package, a binary file and VCS/cache directories to skip."""
    root = tmp_path / "proj"
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "README.md").write_text("# Project\n")
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "core.py").write_text("def f():\n    return 1\n")
    (root / "pkg" / "sub" / "deep.py").write_text("X = 'é'\n")
    (root / "pkg" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (root / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (root / ".git" / "objects").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / "pkg" / "__pycache__").mkdir()
    (root / "pkg" / "__pycache__" / "core.cpython-311.pyc").write_text("not really bytecode")
    (root / "node_modules" / "left-pad").mkdir(parents=True)
    (root / "node_modules" / "left-pad" / "index.js").write_text("module.exports = 1\n")
    return root


# --- load_context: directories and globs -----------------------------------------------------


def test_directory_loads_text_files_sorted_and_skips_binary_and_vcs(tree: Path) -> None:
    docs = load_context(tree)
    assert isinstance(docs, Documents)
    assert list(docs) == ["README.md", "pkg/__init__.py", "pkg/core.py", "pkg/sub/deep.py"]
    assert docs["pkg/sub/deep.py"] == "X = 'é'\n"
    assert docs["pkg/__init__.py"] == ""  # an empty text file is still a document
    assert docs.skip_reasons == {
        ".git/": "version control",
        "latin1.txt": "not utf-8 text",
        "node_modules/": "dependencies",
        "pkg/__pycache__/": "cache",
        "pkg/logo.png": "binary",
    }
    assert docs.skipped == list(docs.skip_reasons)
    assert docs.root == str(tree)


def test_directory_given_as_str_and_pathlike(tree: Path) -> None:
    class PathLike:
        def __fspath__(self) -> str:
            return str(tree)

    assert load_context(str(tree)) == load_context(PathLike()) == load_context(tree)


def test_directory_with_other_encoding_reads_what_utf8_skips(tree: Path) -> None:
    docs = load_context(tree, encoding="latin-1")
    assert isinstance(docs, Documents)
    assert docs["latin1.txt"] == "café"
    assert [rel for rel in docs.skipped if not rel.endswith("/")] == ["pkg/logo.png"]


def test_directory_file_symlinks_followed_dir_symlinks_not(tree: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("linked text")
    try:
        (tree / "link.txt").symlink_to(outside)
        (tree / "pkg" / "loop").symlink_to(tree, target_is_directory=True)
    except OSError:
        pytest.skip("symlinks are not available here")
    docs = load_context(tree)
    assert isinstance(docs, Documents)
    assert docs["link.txt"] == "linked text"
    assert not any(name.startswith("pkg/loop") for name in docs)


def test_directory_without_text_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"\x00\x01")
    (tmp_path / "b.bin").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ContextError, match=r"contains no text files \(2 binary"):
        load_context(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ContextError, match=r"holds no files"):
        load_context(empty)


def test_glob_recursive_keys_relative_to_fixed_prefix(tree: Path) -> None:
    docs = load_context(f"{tree}/**/*.py")
    assert isinstance(docs, Documents)
    # __pycache__ and node_modules are skipped; ** also matches zero directories.
    assert list(docs) == ["pkg/__init__.py", "pkg/core.py", "pkg/sub/deep.py"]
    assert docs.root == f"{tree}/**/*.py"
    one_level = load_context(str(tree / "pkg" / "*.py"))
    assert list(one_level) == ["__init__.py", "core.py"]


def test_relative_glob_and_binary_matches(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree)
    docs = load_context("pkg/*")
    assert isinstance(docs, Documents)
    assert list(docs) == ["__init__.py", "core.py"]
    assert docs.skipped == ["logo.png"]
    assert list(load_context("*.md")) == ["README.md"]


def test_glob_without_matches_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ContextError, match="matches no files") as info:
        load_context(f"{tmp_path}/**/*.nothing")
    assert info.value.fix


def test_text_with_glob_characters_stays_text() -> None:
    for text in ["What is 2*3?", "Is [x] in the list?", "a * b / c = ?"]:
        assert load_context(text) is text


# --- load_context: single files --------------------------------------------------------------


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("line one\nline two\n", encoding="utf-8")
    assert load_context(path) == "line one\nline two\n"
    assert load_context(str(path)) == "line one\nline two\n"


def test_binary_file_is_an_error(tmp_path: Path) -> None:
    nul = tmp_path / "data.bin"
    nul.write_bytes(b"abc\x00def")
    with pytest.raises(ContextError, match="looks binary"):
        load_context(nul)
    undecodable = tmp_path / "data.txt"
    undecodable.write_bytes(b"\xff\xfe\xfd")
    with pytest.raises(ContextError, match="looks binary"):
        load_context(undecodable)


def test_json_file(tmp_path: Path) -> None:
    path = tmp_path / "data.JSON"
    path.write_text(json.dumps({"a": [1, 2], "b": "x"}))
    assert load_context(path) == {"a": [1, 2], "b": "x"}
    (tmp_path / "bad.json").write_text('{"a": 1,\n oops}')
    with pytest.raises(ContextError, match=r"not valid JSON.*line 2"):
        load_context(tmp_path / "bad.json")
    (tmp_path / "scalar.json").write_text("42")
    with pytest.raises(ContextError, match="lone JSON int"):
        load_context(tmp_path / "scalar.json")


@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson"])
def test_jsonl_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"rows{suffix}"
    path.write_text('{"q": 1}\n\n  \n["x", "\u2028"]\n"s"\n')
    assert load_context(path) == [{"q": 1}, ["x", "\u2028"], "s"]


def test_jsonl_bad_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"q": 1}\n\n{"q": 2}\n{"q": \n')
    with pytest.raises(ContextError) as info:
        load_context(path)
    assert "rows.jsonl" in str(info.value)
    assert "line 4" in str(info.value)


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ContextError, match="does not exist") as info:
        load_context(tmp_path / "nope.txt")
    assert info.value.fix
    # A str that looks like a path and names nothing is a mistyped path, not the text to read...
    for typo in (str(tmp_path / "nope.txt"), "logs/", "data/report.csv"):
        with pytest.raises(ContextError, match="looks like a path") as info:
            load_context(typo)
        assert "[text]" in (info.value.fix or "")
    # ...while text that merely holds a slash or a dot is text.
    for text in (
        "What is 2/3?",
        "3/4",
        "e.g.",
        "see notes.txt for details",
        "https://x.org/a.html",
    ):
        assert load_context(text) == text


# --- load_context: in-memory values ----------------------------------------------------------


def test_str_is_returned_unchanged() -> None:
    text = "some long document " * 10
    assert load_context(text) is text
    big = "x" * 10_000  # too long to be a path: never handed to os.stat
    assert load_context(big) is big
    multi = "first line\nsecond line"
    assert load_context(multi) is multi


def test_list_tuple_dict_are_not_copied() -> None:
    items = ["a", "b"]
    assert load_context(items) is items
    assert load_context(("a", "b")) == ["a", "b"]
    mapping = {"k": "v"}
    assert load_context(mapping) is mapping
    docs = Documents({"a.txt": "hi"})
    assert load_context(docs) is docs


def test_bytes_are_decoded() -> None:
    assert load_context("café".encode()) == "café"
    assert load_context("café".encode("latin-1"), encoding="latin-1") == "café"
    with pytest.raises(ContextError, match="not utf-8 text"):
        load_context(b"\xff\xfe")
    with pytest.raises(ContextError, match="Unknown text encoding"):
        load_context(b"abc", encoding="no-such-codec")


def test_unsupported_type_names_type_and_what_is_accepted() -> None:
    with pytest.raises(ContextError) as info:
        load_context(42)
    message = str(info.value)
    assert "int" in message
    assert "pathlib.Path" in message
    assert "list" in message


# --- Documents --------------------------------------------------------------------------------


def test_documents_behaves_like_dict_with_short_repr() -> None:
    docs = Documents(
        {"b.py": "x" * 1_234_567, "a.py": "y"}, skipped=["z.bin", "c.bin"], root="src/"
    )
    assert docs == {"b.py": "x" * 1_234_567, "a.py": "y"}
    assert isinstance(docs, dict)
    assert docs.skipped == ["c.bin", "z.bin"]
    assert repr(docs) == "<Documents: 2 documents, 1,234,568 chars, 2 skipped from 'src/'>"
    assert str(docs) == repr(docs)
    assert repr(Documents({"a": "b"})) == "<Documents: 1 document, 1 chars>"
    assert Documents([("a", "b")]) == {"a": "b"}
    clone = pickle.loads(pickle.dumps(docs))
    assert clone == docs
    assert (clone.skipped, clone.root) == (docs.skipped, docs.root)


# --- describe_context -------------------------------------------------------------------------


def test_describe_str() -> None:
    info = describe_context("hello world", prefix_chars=5)
    assert info == ContextInfo(
        type="str",
        chars=11,
        docs=1,
        lengths=(11,),
        names=(),
        prefix="hello",
        sha256=hashlib.sha256(b"hello world").hexdigest(),
    )


def test_describe_list_and_nonstr_items() -> None:
    info = describe_context(["abc", {"k": "é"}, 12])
    assert info.type == "list"
    assert info.docs == 3
    assert info.lengths == (3, len('{"k": "é"}'), 2)
    assert info.chars == 3 + 10 + 2
    assert info.prefix == "abc"
    assert info.names == ()


def test_describe_chat_messages_count_content() -> None:
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Hi"},
    ]
    info = describe_context(messages)
    assert info.lengths == (16, 2)
    assert info.chars == 18
    assert info.prefix == "You are helpful."
    # Roles are part of the content identity even though they are not counted.
    swapped = [{"role": "user", "content": "You are helpful."}, {"role": "user", "content": "Hi"}]
    assert describe_context(swapped).sha256 != info.sha256


def test_describe_dict_and_documents(tree: Path) -> None:
    info = describe_context({"b": "xx", 3: [1, 2]})
    assert (info.type, info.docs, info.names, info.lengths, info.chars) == (
        "dict",
        2,
        ("b", "3"),
        (2, 6),
        8,
    )
    docs = load_context(tree)
    assert isinstance(docs, Documents)
    info = describe_context(docs)
    assert info.type == "Documents"
    assert info.names == ("README.md", "pkg/__init__.py", "pkg/core.py", "pkg/sub/deep.py")
    assert info.prefix == "# Project\n"
    assert info.chars == sum(len(text) for text in docs.values())
    assert describe_context(dict(docs)).sha256 == info.sha256  # hash depends on content only
    assert describe_context(OrderedDict(docs)).type == "OrderedDict"


def test_describe_empty_values() -> None:
    assert describe_context("").chars == 0
    empty_list = describe_context([])
    assert (empty_list.docs, empty_list.chars, empty_list.lengths, empty_list.prefix) == (
        0,
        0,
        (),
        "",
    )
    assert describe_context({}).docs == 0
    empties: tuple[object, ...] = ("", [], {})
    assert len({describe_context(v).sha256 for v in empties}) == 3


def test_lengths_truncated_but_chars_counts_all() -> None:
    items = [str(i) * (i + 1) for i in range(250)]
    info = describe_context(items, max_lengths=100)
    assert len(info.lengths) == 100
    assert info.lengths[:3] == (1, 2, 3)
    assert info.docs == 250
    assert info.chars == sum(len(item) for item in items)
    named = describe_context({f"k{i}": "v" for i in range(250)}, max_lengths=10)
    assert named.names == tuple(f"k{i}" for i in range(10))
    assert describe_context("abc", max_lengths=0).lengths == ()


def test_sha256_equal_for_equal_content_and_different_otherwise() -> None:
    assert describe_context(["a", "b"]).sha256 == describe_context(["a", "b"]).sha256
    assert describe_context(("a", "b")).sha256 == describe_context(["a", "b"]).sha256
    distinct = [
        "ab",
        ["ab"],
        ["a", "b"],
        ["a", "b", ""],
        {"a": "b"},
        {"ab": ""},
        {"a": "c"},
        ["a:b"],
        ["1:a"],
    ]
    assert len({describe_context(v).sha256 for v in distinct}) == len(distinct)


def test_sha256_is_stable_across_processes() -> None:
    value = {"doc": "text é", "tags": {"b", "a", "c"}, "n": [1, 2.5, None]}
    code = (
        "from rlm_kernel._context import describe_context\n"
        "print(describe_context({'doc': 'text é', 'tags': {'b', 'a', 'c'}, 'n': [1, 2.5, None]})"
        ".sha256)"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert other.stdout.strip() == describe_context(value).sha256


def test_describe_unserializable_values_do_not_raise() -> None:
    cyclic: list[object] = []
    cyclic.append(cyclic)
    info = describe_context([cyclic, {(1, 2): "tuple key"}, object()])
    assert info.docs == 3
    assert len(info.sha256) == 64
    assert describe_context("lone \udcff surrogate").chars == 16


def test_context_info_round_trip() -> None:
    info = describe_context({"a": "x" * 300, "b": [1]}, prefix_chars=10)
    data = info.to_dict()
    assert data["lengths"] == [300, 3]
    assert data["names"] == ["a", "b"]
    assert json.loads(json.dumps(data)) == data
    assert ContextInfo.from_dict(json.loads(json.dumps(data))) == info
    assert ContextInfo.from_dict(data).to_dict() == data
    with pytest.raises(TrajectoryError, match="malformed"):
        ContextInfo.from_dict({"type": "str"})


def test_context_info_keeps_no_reference_to_context() -> None:
    class Item(str):
        pass

    payload = Item("x" * 1000)
    info = describe_context([payload])
    assert all(value is not payload for value in vars(info).values())
    assert sys.getsizeof(info.prefix) < 1000


def test_fifty_megabyte_str() -> None:
    big = ("0123456789abcdé\n" * (50 * 2**20 // 16))[: 50 * 2**20]
    info = describe_context(big)
    assert info.chars == len(big) == 50 * 2**20
    assert info.docs == 1
    assert info.lengths == (len(big),)
    assert info.prefix == big[:200]
    assert info.sha256 == hashlib.sha256(big.encode()).hexdigest()
