"""What a retriever is: the small protocol every search backend implements, and the hit it returns.

The model's code never holds the collection: it calls ``search(query, k)`` and gets hits (an id, a
score, a title and a snippet, never a whole document), then ``get(doc_id)`` for the text of the few it
reads. A backend may also offer ``vector_search`` / ``hybrid_search`` (``supports``); the session binds
only the tools the backend has and lists them in the prompt.

``within`` is the scope a parent RLM gives a child (``rlm_query(..., scope=[ids])``): the backend
answers from those documents only, in the query itself (never by over-fetching and filtering), and
``get`` refuses an id outside it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol, TypedDict, runtime_checkable


class Hit(TypedDict):
    """One search result as the model's code receives it."""

    id: str
    score: float  # higher is better; comparable within one result list only
    title: str
    snippet: str  # a short extract around the matched terms, never the whole document


@runtime_checkable
class Retriever(Protocol):
    """A searchable collection of text documents, each with a string id."""

    def search(
        self, query: str, k: int = 10, *, within: Collection[str] | None = None
    ) -> list[Hit]:
        """The ``k`` best keyword (BM25-style) matches for ``query``, best first; with ``within``,
        only among those document ids."""
        ...

    def get(self, doc_id: str, *, within: Collection[str] | None = None) -> str:
        """The text of document ``doc_id``; a ``RetrievalError`` saying so when there is none (or
        it lies outside ``within``)."""
        ...

    def count(self) -> int:
        """How many documents the collection holds (cheap: no scan)."""
        ...

    def describe(self) -> str:
        """One line naming the backend and the collection, for the prompt and the records (never a
        password or a key: a DSN is shown without its secret)."""
        ...


def supports(retriever: object, method: str) -> bool:
    """Whether ``retriever`` offers the optional ``vector_search`` / ``hybrid_search`` (same
    signature as ``search``)."""
    return callable(getattr(retriever, method, None))
