"""A retriever (``retriever=``) as the model's tools: ``search``, ``get`` and, where the backend has
them, ``vector_search`` / ``hybrid_search``, over the part of the collection a session may see.

The model's code never holds the collection. A hit is a plain dict of str and float (``id``,
``score``, ``title``, ``snippet``; the sandbox passes such values as they are), its snippet cut to
``SNIPPET_CHARS`` whatever the backend returned, so only ``get`` ever hands over a whole document.
``k`` is bounded by ``MAX_K``: a larger one is clipped, with a note printed once.

A child RLM (``rlm_query(prompt, scope=...)``) sees the scope its parent chose (``for_child``): the
parent's own (``None``), a list of document ids (narrowed to the parent's scope, never widened), or
no collection (``False`` or ``[]``). The backend answers from the scope in the query (``within=``).

What the prompt says of a collection (``CollectionInfo``) is bounded: a one-line description cut to
``DESCRIBE_CHARS``, the count and the tool names, so the root prompt is the same size for a thousand
documents or a billion, up to the digits of the count.

A replay re-runs recorded code, so it needs the retriever again (``retriever=`` on ``resume``, the
replay functions and their front ends); the session record names the retriever it ran with.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ._prompts import DESCRIBE_CHARS, CollectionInfo
from ._sandbox import sandbox_safe
from ._secrets import redact_url
from .errors import ConfigError, ContextMismatchWarning, RetrievalError

if TYPE_CHECKING:
    from .retrieval import Retriever

MAX_K = 50
SNIPPET_CHARS = 400
OPTIONAL = ("vector_search", "hybrid_search")  # bound when the backend has them (``supports``)

_DOCS = {
    "search": "Keyword search of the collection: the k best documents (k at most {max_k}), best "
    "first, each a dict with id, score, title and snippet (a short extract, never the whole "
    "text). Read one with get(id).",
    "vector_search": "Search by meaning (embeddings): same arguments and hits as search.",
    "hybrid_search": "Keyword and meaning search combined: same arguments and hits as search.",
}


class CollectionTools:
    """A retriever and the scope a session sees of it, as the functions bound in its namespace."""

    def __init__(self, retriever: Retriever, within: frozenset[str] | None = None) -> None:
        # Imported with the first collection: the retrieval package (its builder, sqlite3) is not
        # part of ``import rlm_kernel`` (tests/test_startup.py).
        from .retrieval import supports

        self.retriever = retriever
        self.within = within  # None: the whole collection
        self.names = ["search", "get", *(m for m in OPTIONAL if supports(retriever, m))]
        self._clip_noted = False

    def functions(self) -> dict[str, Callable[..., Any]]:
        """The tools by name (``names``: search and get, and the optional ones the backend offers),
        each callable from the sandbox too (they only read the collection)."""
        made: dict[str, Callable[..., Any]] = {"search": self._searcher("search")}
        made["get"] = self._getter()
        for method in self.names[2:]:
            made[method] = self._searcher(method)
        return made

    def info(self, *, only: bool) -> CollectionInfo:
        """What the prompt says of the collection (``only``: there is no ``P`` beside it)."""
        return CollectionInfo(
            description=self.description(),
            count=self.count(),
            tools=tuple(self.names),
            scoped=self.within is not None,
            only=only,
        )

    def description(self) -> str:
        """The backend's one line, without URL credentials, cut to ``DESCRIBE_CHARS``."""
        try:
            text = " ".join(str(self.retriever.describe()).split())
        except Exception as exc:  # a backend that cannot describe itself still serves
            text = f"{type(self.retriever).__name__} ({type(exc).__name__} describing it)"
        text = " ".join(redact_url(word) if "://" in word else word for word in text.split(" "))
        return text if len(text) <= DESCRIBE_CHARS else text[: DESCRIBE_CHARS - 1] + "…"

    def count(self) -> int:
        """Documents this session may reach: the scope's size, or the collection's."""
        if self.within is not None:
            return len(self.within)
        try:
            return int(self.retriever.count())
        except RetrievalError as exc:
            raise ConfigError(
                f"The retriever cannot count its documents: {exc}",
                fix="Check that the index exists and its server is up",
            ) from exc

    def record(self) -> dict[str, Any]:
        """The session record's ``retriever`` entry (scrubbed again where records are written)."""
        return {
            "describe": self.description(),
            "count": self.count(),
            "tools": self.names,
            "scope": None if self.within is None else sorted(self.within),
        }

    # --- the tools ---------------------------------------------------------------------------------
    def _searcher(self, method: str) -> Callable[..., Any]:
        backend = getattr(self.retriever, method)

        def search(query: str, k: int = 10) -> list[dict[str, Any]]:
            if not isinstance(query, str) or not query.strip():
                raise RetrievalError(
                    f"{method}(query, k): query must be a non-empty str, not {query!r}. "
                    'Pass words from the question: search("payment terms")'
                )
            if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                raise RetrievalError(f"{method}(query, k): k must be a positive int, not {k!r}")
            if k > MAX_K:
                if not self._clip_noted:
                    self._clip_noted = True
                    print(
                        f"Note: {method}(k={k}) returns at most {MAX_K} hits; k was clipped to "
                        f"{MAX_K}. Search again with other words for more."
                    )
                k = MAX_K
            try:
                found = backend(query, k, within=self.within)
            except RetrievalError as exc:  # its fix in the message: the sandbox keeps only that
                raise RetrievalError(str(exc)) from None
            return [_hit(h) for h in list(found)[:k]]

        search.__name__ = search.__qualname__ = method
        search.__doc__ = _DOCS[method].format(max_k=MAX_K)
        return sandbox_safe(search)

    def _getter(self) -> Callable[..., Any]:
        def get(doc_id: str) -> str:
            """The full text of document doc_id (an id from a search hit)."""
            if not isinstance(doc_id, str):
                raise RetrievalError(
                    f"get(doc_id): doc_id must be a str (a hit's 'id'), not {type(doc_id).__name__}"
                )
            try:
                return str(self.retriever.get(doc_id, within=self.within))
            except RetrievalError as exc:
                raise RetrievalError(str(exc)) from None

        return sandbox_safe(get)


def _hit(raw: Mapping[str, Any]) -> dict[str, Any]:
    snippet = str(raw.get("snippet", ""))
    if len(snippet) > SNIPPET_CHARS:
        snippet = snippet[: SNIPPET_CHARS - 1] + "…"
    return {
        "id": str(raw["id"]),
        "score": float(raw.get("score", 0.0)),
        "title": str(raw.get("title", "")),
        "snippet": snippet,
    }


def collection_tools(retriever: object) -> CollectionTools | None:
    """``retriever=`` as a session takes it: None, or an object with the ``Retriever`` methods
    (a path or DSN string is opened by the front ends, ``open_retriever``)."""
    if retriever is None:
        return None
    if isinstance(retriever, CollectionTools):
        return retriever
    if isinstance(retriever, str):
        raise ConfigError(
            f"retriever={retriever!r} is a string; run() and Session take a retriever object",
            fix="Open it first: rlm_kernel.retrieval.open_retriever(path_or_dsn), or build one "
            "with rlm_kernel.index(source, path)",
        )
    from .retrieval import Retriever

    if not isinstance(retriever, Retriever):
        missing = [m for m in ("search", "get", "count", "describe") if not hasattr(retriever, m)]
        raise ConfigError(
            f"retriever= is a {type(retriever).__name__}, which lacks {', '.join(missing)}",
            fix="Pass an index (rlm_kernel.index(...)) or an object with search, get, count and "
            "describe (rlm_kernel.retrieval.Retriever)",
        )
    return CollectionTools(retriever)


def with_collection(
    tools: dict[str, Callable[..., Any]], collection: CollectionTools | None
) -> dict[str, Callable[..., Any]]:
    """The session's tools with the collection's added; a tool of the same name is refused."""
    if collection is None:
        return tools
    added = collection.functions()
    clash = sorted(set(tools) & set(added))
    if clash:
        raise ConfigError(
            f"Tool(s) {', '.join(clash)} have the name of a retriever's tool",
            fix="Rename your tool, or leave out retriever=",
        )
    return {**tools, **added}


def child_scope(scope: object) -> frozenset[str] | None:
    """``rlm_query(..., scope=)`` normalised: None (the parent's own scope), or the ids (empty for
    no collection: ``False`` or ``[]``)."""
    if scope is None:
        return None
    if scope is False:
        return frozenset()
    if isinstance(scope, str) or not isinstance(scope, Iterable):
        raise RetrievalError(
            f"scope={scope!r}: give a list of document ids (scope=[h['id'] for h in hits]), None "
            "for your own scope, or False for no collection"
        )
    ids = list(scope)
    wrong = [i for i in ids if not isinstance(i, str)]
    if wrong:
        raise RetrievalError(f"scope: document ids are str, not {type(wrong[0]).__name__}")
    return frozenset(ids)


def for_child(parent: CollectionTools | None, scope: object) -> CollectionTools | None:
    """What a child RLM sees of the parent's collection (see the module docstring)."""
    ids = child_scope(scope)
    if ids is None:
        return None if parent is None else CollectionTools(parent.retriever, parent.within)
    if not ids:
        return None
    if parent is None:
        raise RetrievalError("scope= was given, but this session has no collection to scope")
    if parent.within is not None and not ids <= parent.within:
        outside = sorted(ids - parent.within)
        raise RetrievalError(
            f"scope: {len(outside)} id(s) lie outside your own scope ({', '.join(outside[:3])}); "
            "a child sees at most what you see"
        )
    return CollectionTools(parent.retriever, ids)


def open_spec(spec: str, namespace: Mapping[str, Any] | None = None) -> object:
    """``--retriever SPEC`` (``%rlm``, the CLI): a variable of ``namespace`` by that name, else an
    index path or ``postgresql://`` DSN opened by ``rlm_kernel.retrieval.open_retriever``."""
    if namespace is not None and spec.isidentifier() and spec in namespace:
        return namespace[spec]
    from .retrieval import open_retriever  # the backends load only when one is named

    return open_retriever(spec)


def require_retriever(recorded: Mapping[str, Any], retriever: object) -> None:
    """A replay of a session that had a collection needs it again: its code searches it. One that
    describes itself otherwise (another backend or file, another count) is warned about."""
    entry = recorded.get("retriever")
    if entry is not None and retriever is None:
        raise ConfigError(
            f"The recorded session searched a collection ({entry.get('describe', '?')}); its code "
            "runs again and needs it",
            fix="Pass the retriever again: retriever=... (--retriever PATH on the command line)",
        )
    given = collection_tools(retriever)
    if entry is not None and given is not None and given.description() != entry.get("describe"):
        warnings.warn(
            ContextMismatchWarning(
                f"The collection is {given.description()!r}, the session was recorded on "
                f"{entry.get('describe')!r}: the replayed model answers may not fit what its "
                "searches now find"
            ),
            stacklevel=3,
        )
