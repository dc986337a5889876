"""Sub-calls made from inside iteration code: ``llm_query``, ``llm_batch`` and ``rlm_query``.

One engine per session. It bounds concurrency, enforces the budgets the whole RLM tree shares, serves
the optional cache, rolls usage up, records every call for the trajectory and emits an event at its start
and end. A failing call never raises into the model's code: it comes back as an ``"Error: …"`` string,
so one bad item cannot kill a batch.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from . import _aio
from . import _stdjson as json
from ._answers import typed_subcall
from ._events import Emitter, SubcallFinished, SubcallStarted
from ._output import output_spec
from ._retrieval_tools import CollectionTools, for_child
from ._schema import SubcallRecord, ToolTurnRecord, subcall_record
from ._secrets import Redactor, redact_kwargs
from ._subtools import SubTool, cut_marker, tool_loop
from .errors import CostUnknownWarning, ModelNotFoundError, ModelResponseError, RLMError
from .models import (
    Completion,
    Message,
    ModelClient,
    Usage,
    UsageSummary,
    call_deadline,
    request_key,
    tool_key,
)

if TYPE_CHECKING:
    from ._config import RLM


class Budget:
    """Limits shared by a root session and all its children."""

    def __init__(self, config: RLM) -> None:
        self.config = config
        # wall_timeout counts time spent running, not time a session sat paused or finished.
        self._ran = 0.0
        self._since: float | None = None
        self.tokens = 0
        self.cost = 0.0
        self._cost_warned = False
        self.subcalls = 0
        # Every call charged, the whole tree, as it happens: what live displays show
        # (``_snapshot``); a session's own ``usage`` takes a child's in only once the child ends.
        self._charged = UsageSummary()
        self._lock = threading.Lock()

    def charge(self, usage: Usage, model: str) -> None:
        with self._lock:
            self._charged.add(model, usage)
            self.tokens += usage.total_tokens
            self.cost += usage.cost or 0.0
            warn = usage.cost is None and self.config.max_cost is not None and not self._cost_warned
            self._cost_warned = self._cost_warned or warn
        if warn:
            warnings.warn(
                f"RLM.max_cost cannot hold: the endpoint reports no cost for {model!r}, and neither "
                f"RLM.prices nor the genai-prices table (RLM.known_prices) has a price for it. Add "
                f"one (USD per million tokens), e.g. %config RLM.prices = "
                f"{{{model!r}: {{'input': 1.25, 'output': 10.0}}}}, or limit RLM.max_tokens instead.",
                CostUnknownWarning,
                stacklevel=2,
            )

    @property
    def charged(self) -> Usage:
        """The usage of every call charged so far, the whole tree (cost None while none reported one)."""
        with self._lock:
            return self._charged.total

    def take_subcall(self) -> bool:
        with self._lock:
            limit = self.config.max_subcalls
            if limit is not None and self.subcalls >= limit:
                return False
            self.subcalls += 1
            return True

    def clock(self, running: bool) -> None:
        """Start or stop counting wall time (the root session enters or leaves ``running``)."""
        with self._lock:
            now = time.monotonic()
            if running and self._since is None:
                self._since = now
            elif not running and self._since is not None:
                self._ran += now - self._since
                self._since = None

    @property
    def counting(self) -> bool:
        """Whether wall time is being counted now."""
        return self._since is not None

    @property
    def elapsed(self) -> float:
        with self._lock:
            return self._ran + (time.monotonic() - self._since if self._since is not None else 0.0)

    def wall_deadline(self) -> float | None:
        """When (``time.monotonic()``) RLM.wall_timeout runs out, for a model call starting now: the
        call is cut then (``models.call_deadline``). None without a limit, and once it has run out:
        the call made then is the best-answer call that ends the session, bounded by
        RLM.request_timeout only, as it always was."""
        limit = self.config.wall_timeout
        if limit is None:
            return None
        left = limit - self.elapsed
        return time.monotonic() + left if left > 0 else None

    def out_of_time(self) -> bool:
        """Whether RLM.wall_timeout has run out."""
        limit = self.config.wall_timeout
        return limit is not None and self.elapsed >= limit

    def exceeded(self) -> tuple[str, str] | None:
        """The first limit that has been reached, as (reason, sentence naming the setting)."""
        cfg = self.config
        if cfg.max_tokens is not None and self.tokens >= cfg.max_tokens:
            return "max_tokens", f"{self.tokens:,} tokens used, RLM.max_tokens = {cfg.max_tokens:,}"
        if cfg.max_cost is not None and self.cost >= cfg.max_cost:
            return "max_cost", f"${self.cost:.4f} spent, RLM.max_cost = ${cfg.max_cost:g}"
        elapsed = self.elapsed
        if cfg.wall_timeout is not None and elapsed >= cfg.wall_timeout:
            return (
                "wall_timeout",
                f"{elapsed:.0f} s elapsed, RLM.wall_timeout = {cfg.wall_timeout:g} s",
            )
        return None


class SubcallCache:
    """Identical sub-calls (model + messages + parameters) answered once."""

    def __init__(self, mode: str, directory: Path) -> None:
        self._mode = mode
        self._memory: dict[str, Completion] = {}
        self._dir = directory
        self._lock = threading.Lock()

    def get(self, key: str) -> Completion | None:
        if self._mode == "off":
            return None
        with self._lock:
            hit = self._memory.get(key)
        if hit is None and self._mode == "disk":
            path = self._dir / f"{key}.json"
            if path.exists():
                try:
                    hit = Completion.from_dict(json.loads(path.read_text(encoding="utf-8")))
                except (OSError, ValueError, KeyError):
                    return None  # a damaged cache entry is a miss, not an error
        return hit

    def put(self, key: str, completion: Completion) -> None:
        if self._mode == "off":
            return
        with self._lock:
            self._memory[key] = completion
        if self._mode == "disk":
            self._dir.mkdir(parents=True, exist_ok=True)
            tmp = self._dir / f"{key}.json.tmp"
            tmp.write_text(json.dumps(completion.to_dict()), encoding="utf-8")
            tmp.replace(self._dir / f"{key}.json")


# (prompt, context, call id, what the child sees of the collection) -> answer, trajectory, usage
ChildRunner = Callable[
    [str, object, str, CollectionTools | None], tuple[str, dict[str, Any] | None, UsageSummary]
]


class SubcallEngine:
    def __init__(
        self,
        *,
        session_id: str,
        depth: int,
        config: RLM,
        client: ModelClient,
        budget: Budget,
        cache: SubcallCache,
        emitter: Emitter,
        redactor: Redactor,
        child_runner: ChildRunner | None,
        sub_tools: Sequence[SubTool] = (),
    ) -> None:
        self.session_id = session_id
        self.depth = depth
        self.config = config
        self.client = client
        self.budget = budget
        self.cache = cache
        self.emitter = emitter
        self.redactor = redactor
        self.usage = UsageSummary()
        self._child_runner = child_runner
        # Tools llm_query / llm_batch calls may call (``_subtools``): each such call is a tool loop.
        self.sub_tools = list(sub_tools)
        self._records: list[SubcallRecord] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._semaphore: asyncio.Semaphore | None = None
        self._in_flight = 0
        self.iteration = 0
        # The endpoint rejected a request with response_format: typed sub-calls go without it.
        self.structured_refused = False
        # The session's collection (``retriever=``), which child RLMs see a scope of.
        self.collection: CollectionTools | None = None

    # --- bookkeeping --------------------------------------------------------------------------
    def take_records(self) -> list[SubcallRecord]:
        """The calls made since the last take, in call order (batches in prompt order)."""
        with self._lock:
            records, self._records = self._records, []
        records.sort(key=lambda r: r["seq"])
        return records

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def _new_id(self) -> tuple[str, int]:
        seq = next(self._ids)
        return f"{self.session_id}.{self.iteration}.{seq}", seq

    def _text(self, prompt: object) -> str:
        # A secret the code read from the environment must not travel to a sub-model.
        return self.redactor.scrub(_as_text(prompt))

    def _model(self, model: str | None) -> str:
        return model or self.config.effective_sub_model()

    # --- the helpers the model calls ---------------------------------------------------------------
    def llm_query(self, prompt: object, model: str | None = None, output: object = None) -> Any:
        """Ask a sub-model one question; it sees only ``prompt``. Returns its answer; with
        ``output`` (a pydantic model, a TypedDict, a type such as ``list[str]``, a JSON schema dict)
        the answer validated as that type (``_answers.typed_subcall``), or an ``Error: …`` string."""
        if output is not None:
            return _aio.run_sync(self._typed(self._text(prompt), self._model(model), output))
        return _aio.run_sync(self._one(self._text(prompt), self._model(model), "llm_query", None))

    async def _typed(self, prompt: str, model: str, output: object) -> Any:
        try:
            spec = output_spec(output)
        except RLMError as exc:
            return f"Error: {exc}"

        async def ask(text: str, fmt: dict[str, Any]) -> str:
            return await self._one(text, model, "llm_query", None, output=(spec.name, fmt))

        return await typed_subcall(ask, spec, prompt)

    def llm_batch(self, prompts: Sequence[object], model: str | None = None) -> list[str]:
        """Ask many independent questions in parallel; answers come back in order."""
        if isinstance(prompts, str):
            prompts = [prompts]
        texts = [self._text(p) for p in prompts]
        if not texts:
            return []
        return _aio.run_sync(self._batch(texts, self._model(model)))

    def rlm_query(self, prompt: object, context: object = None, *, scope: object = None) -> str:
        """Start a child RLM on ``context`` (default: the prompt) to answer ``prompt``. With a
        collection, ``scope`` is what the child may search: None your own scope, a list of document
        ids only those, False none (``_retrieval_tools.for_child``)."""
        text = self._text(prompt)
        if self._child_runner is None or self.depth + 1 >= self.config.max_depth:
            # At the depth limit a plain call answers: it must see the context it was given.
            if context is not None:
                text = f"{text}\n\n{self._text(context)}"
            window = self.config.context_window * 3  # characters, at about 3 to 4 per token
            if len(text) > window:
                record = self._start("rlm_query", self._model(None), text[:2_000], None, None)
                record["error"] = (
                    f"rlm_query at RLM.max_depth = {self.config.max_depth} is one plain call, and "
                    f"this prompt and context are {len(text):,} characters, more than the model's "
                    f"window (RLM.context_window = {self.config.context_window:,} tokens): pass a "
                    "smaller slice, or raise RLM.max_depth so that a child RLM can read it"
                )
                return self._end(record, time.perf_counter())
            return _aio.run_sync(self._one(text, self._model(None), "rlm_query", None))
        return self._child(text, context, scope)

    def rlm_query_batched(self, prompts: Sequence[object], *, scope: object = None) -> list[str]:
        """``rlm_query`` for each prompt (each child RLM reads its own prompt); answers in order.

        The reference implementation's name. The children run one after another, not in parallel:
        each runs code in a REPL of its own, and a step's printed output is captured per process,
        so concurrent children would mix their output."""
        if isinstance(prompts, str):
            prompts = [prompts]
        return [self.rlm_query(prompt, scope=scope) for prompt in prompts]

    # --- implementation ------------------------------------------------------------------------------
    async def _batch(self, prompts: list[str], model: str) -> list[str]:
        batch_id = f"b{next(self._ids)}"
        size = len(prompts)
        return list(
            await asyncio.gather(
                *(
                    self._one(p, model, "llm_batch", {"id": batch_id, "index": i, "size": size})
                    for i, p in enumerate(prompts)
                )
            )
        )

    async def _one(
        self,
        prompt: str,
        model: str,
        kind: str,
        batch: dict[str, Any] | None,
        *,
        output: tuple[str, dict[str, Any]] | None = None,
    ) -> str:
        """One sub-call; ``output`` is a typed one's (type name, ``response_format``)."""
        messages: list[Message] = [{"role": "user", "content": prompt}]
        key = request_key(model, messages)
        record = self._start(kind, model, prompt, key, batch)
        started = time.perf_counter()
        if output is not None:
            record["output"] = output[0]
        if self.sub_tools and kind != "rlm_query":
            return await self._with_tools(messages, model, record, started)
        try:
            fmt = output[1] if output is not None else None
            completion = await self._complete(messages, model, response_format=fmt)
        except RLMError as exc:
            record["error"] = str(exc)
        except asyncio.CancelledError:
            # The wait for it was interrupted: the step is dropped, but its panel must close.
            record["error"] = "interrupted"
            self._end(record, started)
            raise
        else:
            record["response"] = completion.text
            record["usage"] = completion.usage.to_dict()
            record["cached"] = completion.cached
            record["model"] = completion.model
        return self._end(record, started)

    async def _with_tools(
        self, messages: list[Message], model: str, record: SubcallRecord, started: float
    ) -> str:
        """A sub-call with tools: the tool loop, each of its model calls charged and bounded like
        any sub-call's (one slot of RLM.max_subcalls for the whole loop), every turn recorded."""
        turns: list[ToolTurnRecord] = []
        record["tool_turns"] = turns

        async def complete(
            sent: list[Message], schemas: list[dict[str, Any]] | None
        ) -> tuple[Completion, str]:
            completion = await self._complete(sent, model, tools=schemas, first=not turns)
            key = request_key(model, sent) if schemas is None else tool_key(model, sent, schemas)
            return completion, key

        turn_limit = self.config.sub_tool_turns
        try:
            loop = await tool_loop(
                complete, messages, self.sub_tools, turn_limit, self.redactor.scrub, turns
            )
        except RLMError as exc:
            record["error"] = str(exc)
        except asyncio.CancelledError:
            record["error"] = "interrupted"
            self._end(record, started)
            raise
        else:
            response = loop.completion.text
            if loop.cut:
                record["tool_limit"] = True
                response += cut_marker(turn_limit)
            record["response"] = response
            record["model"] = loop.completion.model
        if turns:
            record["request_key"] = turns[0]["request_key"]
            total = Usage()
            for turn in turns:
                total = total + Usage.from_dict(turn["usage"])
            record["usage"] = total.to_dict()
        return self._end(record, started)

    def _start(
        self, kind: str, model: str, prompt: str, key: str | None, batch: dict[str, Any] | None
    ) -> SubcallRecord:
        """A new sub-call record (its trajectory shape), announced to listeners."""
        call_id, seq = self._new_id()
        record = subcall_record(call_id, seq, kind, model, self.depth + 1, prompt, key, batch)
        size = batch["size"] if batch else 1
        self.emitter.emit(
            SubcallStarted(self.session_id, self.depth, call_id, kind, model, prompt, size)
        )
        return record

    def _end(self, record: SubcallRecord, started: float) -> str:
        """Keep the finished record for the iteration and announce it; the text the model gets back."""
        record["latency"] = time.perf_counter() - started
        with self._lock:
            self._records.append(record)
        self.emitter.emit(
            SubcallFinished(self.session_id, self.depth, record["id"], cast(dict[str, Any], record))
        )
        return f"Error: {record['error']}" if record["error"] else str(record["response"])

    async def _complete(
        self,
        messages: list[Message],
        model: str,
        *,
        tools: list[dict[str, Any]] | None = None,
        first: bool = True,
        response_format: dict[str, Any] | None = None,
    ) -> Completion:
        """One model call of a sub-call: budgets checked, the cache asked, a concurrency slot held.
        A tool loop's calls (``first``: its opening one, which takes the sub-call's slot of
        RLM.max_subcalls) skip the cache: the tools' answers may differ from one run to the next."""
        limit = self._limit_error() if first else self._exhausted()
        if limit is not None:
            raise limit
        if tools is not None or not first:
            return await self._call(messages, model, tools)
        # The replay key names model and messages; a cached answer must also match where it came
        # from and the sampling settings.
        cfg = self.config
        key = request_key(
            model,
            messages,
            {
                "endpoint": self.client.endpoint,
                "temperature": cfg.temperature,
                "max_completion_tokens": cfg.max_completion_tokens,
                # seed, reasoning_effort, extra_body…; header values are left out as redacted.
                "model_kwargs": redact_kwargs(cfg.model_kwargs),
            },
        )
        cached = self.cache.get(key)
        if cached is not None:
            return Completion(cached.text, cached.model, Usage(), 0.0, cached.finish_reason, True)
        completion = await self._call(messages, model, None, response_format)
        self.cache.put(key, completion)
        return completion

    async def _call(
        self,
        messages: list[Message],
        model: str,
        tools: list[dict[str, Any]] | None,
        response_format: dict[str, Any] | None = None,
    ) -> Completion:
        """The call itself, in a concurrency slot, cut at wall_timeout, charged to the budget."""
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(max(1, self.config.subcall_concurrency))
        async with self._semaphore:
            # Checked again once a slot is free: the calls ahead of this one may have used it up.
            exhausted = self._exhausted()
            if exhausted is not None:
                raise exhausted
            with self._lock:
                self._in_flight += 1
            try:
                # Cut when the session's wall_timeout runs out, if it is still in flight then.
                with call_deadline(self.budget.wall_deadline()):
                    if response_format is not None and self._structured():
                        completion = await self._structured_call(messages, model, response_format)
                    elif tools is None:
                        completion = await self.client.acomplete(messages, model=model)
                    else:  # the session checked that the client takes tools (takes_tools)
                        completion = await self.client.acomplete(  # type: ignore[call-arg]
                            messages, model=model, tools=tools
                        )
            finally:
                with self._lock:
                    self._in_flight -= 1
        self.usage.add(completion.model, completion.usage)
        self.budget.charge(completion.usage, completion.model)
        return completion

    def _structured(self) -> bool:
        """Whether a typed sub-call asks for structured output: the client takes
        ``response_format`` and the endpoint has not refused it in this session."""
        return not self.structured_refused and takes_response_format(self.client)

    async def _structured_call(
        self, messages: list[Message], model: str, response_format: dict[str, Any]
    ) -> Completion:
        """A typed sub-call with the endpoint's structured output. An endpoint that rejects the
        request (a server without ``response_format``: HTTP 400) is asked again without it, and
        not with it again: the prompt states the shape, and the answer is validated either way."""
        try:
            return await self.client.acomplete(  # type: ignore[call-arg]
                messages, model=model, response_format=response_format
            )
        except ModelResponseError as exc:
            if isinstance(exc, ModelNotFoundError):
                raise
            self.structured_refused = True
        return await self.client.acomplete(messages, model=model)

    def _limit_error(self) -> RLMError | None:
        if not self.budget.take_subcall():
            return RLMError(
                f"Sub-call limit reached (RLM.max_subcalls = {self.config.max_subcalls}); "
                "no more sub-calls can be made",
                fix="Answer with what you have",
                setting="RLM.max_subcalls",
            )
        return self._exhausted()

    def _exhausted(self) -> RLMError | None:
        exceeded = self.budget.exceeded()
        if exceeded is not None:
            return RLMError(f"Budget exhausted: {exceeded[1]}", fix="Answer with what you have")
        return None

    def _child(self, prompt: str, context: object, scope: object) -> str:
        assert self._child_runner is not None
        record = self._start("rlm_query", self._model(None), prompt, None, None)
        started = time.perf_counter()
        try:
            collection = for_child(self.collection, scope)
        except RLMError as exc:
            record["error"] = str(exc)
            return self._end(record, started)
        if not self.budget.take_subcall():
            record["error"] = (
                f"Sub-call limit reached (RLM.max_subcalls = {self.config.max_subcalls})"
            )
        else:
            # A child with a collection and no context searches it, with no P beside it.
            child_context = prompt if context is None and collection is None else context
            try:
                answer, child, usage = self._child_runner(
                    prompt, child_context, record["id"], collection
                )
            except BaseException as exc:
                # Interrupted or timed out: the step it belongs to stops, but its panel must close.
                record["error"] = (
                    "interrupted" if isinstance(exc, KeyboardInterrupt) else type(exc).__name__
                )
                self._end(record, started)
                raise
            self.usage.merge(usage)
            record["response"], record["child"] = answer, child
            record["usage"] = usage.total.to_dict()
        return self._end(record, started)


def takes_response_format(client: ModelClient) -> bool:
    """Whether ``client.acomplete`` takes ``response_format=`` (structured output; the OpenAI
    client does, a script or a recording answers the prompt, which states the shape too)."""
    try:
        return "response_format" in inspect.signature(client.acomplete).parameters
    except (TypeError, ValueError):
        return False


def _as_text(prompt: object) -> str:
    if isinstance(prompt, str):
        return prompt
    try:
        return json.dumps(prompt, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(prompt)
