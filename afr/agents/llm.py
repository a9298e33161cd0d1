"""``kind: llm`` — one agent for every OpenAI-compatible chat endpoint (Claude, OpenAI, a local server).

Configured by ``afr/conf/agent/{claude,openai,local}.yaml`` (any key overridable from the command
line, e.g. ``agent.model=...`` or ``agent.base_url=...``). Each proposal is one chat-completions call
with a deterministic prompt (:mod:`afr.agents._prompt`); the reply is parsed tolerantly
(:mod:`afr.agents._edits`). A reply that yields no file is answered once with the parse error; if it
still yields none, that proposal slot stays empty. :meth:`LLMAgent.repair` continues the proposal's
conversation with the validator's or run-time messages, at most ``max_repairs`` tries per proposal
(the parse-error retry counts as one).

Transport failures (429, 5xx, timeouts, connection errors) are retried by one layer, the loop in
:meth:`LLMAgent._complete` (the ``openai`` client's own retries are off): ``1 + max_retries`` attempts
per call, pauses of ``backoff_s`` doubling (capped at :data:`MAX_BACKOFF_S`, or the server's
``Retry-After`` when it sends one), silent until the call gives up, then one warning line. A call that
gives up for such a reason sets :attr:`~afr.agents.Agent.outage`: the campaign does not count it as a
fruitless proposal, and stops the agent arm after ``max_outage_calls`` of them in a row
(:meth:`LLMAgent.sustained_outage`). Errors no retry can fix (bad key, unknown model, rejected
parameters) raise :class:`~afr.errors.ConfigError`.

:meth:`LLMAgent.check_endpoint` (the campaign's preflight) asks the endpoint for its models before
anything is recorded: no server, a refused key or an unknown model stop the campaign with one line
(:class:`~afr.errors.EndpointError`). Every request runs in a daemon thread the caller waits on, so
Ctrl-C (or :meth:`LLMAgent.cancel` from the main thread, for a call made in a worker thread) stops
waiting at once instead of after the request's timeout.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import openai

from ..errors import ConfigError, EndpointError
from . import _prompt
from ._base import Agent, AgentContext, CallLog, Proposal, Usage
from ._edits import ParsedReply, ReplyError, parse_reply
from ._grammar import reply_grammar

__all__ = ["LLMAgent", "DUMMY_API_KEY"]

log = logging.getLogger(__name__)

DUMMY_API_KEY = "sk-no-key-required"
"""Sent when ``api_key_env`` is null (local servers ignore the key, the client insists on one)."""

MAX_CONVERSATIONS = 128
MAX_BACKOFF_S = 60.0
"""Longest pause between two attempts of one call (a server's ``Retry-After`` is capped here too)."""
PREFLIGHT_TIMEOUT_S = 15.0
"""Per request of the endpoint check (a local server that is up answers ``/models`` at once)."""
_POLL_S = 0.1
"""How often a caller waiting on a request checks for :meth:`LLMAgent.cancel`."""
_RETRYABLE = (
    openai.APITimeoutError,
    openai.RateLimitError,
    openai.InternalServerError,
    openai.APIConnectionError,
)


@dataclass
class _Conversation:
    """One proposal's chat: the messages so far, the file its edits apply to, repair tries used."""

    messages: list[dict[str, str]]
    parent: str
    note: str = ""
    repairs: int = 0
    calls: int = 0


@dataclass
class _Reply:
    text: str
    finish_reason: str | None
    meta: dict[str, Any] = field(default_factory=dict)


class LLMAgent(Agent):
    """Proposes and repairs recipe files through an OpenAI-compatible chat-completions endpoint."""

    name = "llm"

    def __init__(self, cfg: Mapping[str, Any], seed: int = 0) -> None:
        super().__init__(cfg, seed)
        self.label = str(self.cfg.get("name") or "llm")
        where = f"agent={self.label}"
        self.model = str(self.cfg.get("model") or "")
        if not self.model:
            raise ConfigError(f"agent {self.label!r} has no model", where=where, fix="set agent.model=<name>")
        base_url = self.cfg.get("base_url")
        self.base_url = str(base_url) if base_url else None
        key_env = self.cfg.get("api_key_env")
        self.api_key_env = str(key_env) if key_env else None
        self.edit_format = str(self.cfg.get("edit_format", "whole"))
        if self.edit_format not in _prompt.EDIT_FORMATS:
            raise ConfigError(
                f"agent {self.label!r}: unknown edit_format {self.edit_format!r}",
                where=where,
                fix="agent.edit_format=whole or agent.edit_format=search_replace",
            )
        self.prompt = str(self.cfg.get("prompt") or "full")
        if self.prompt not in _prompt.PROMPTS:
            raise ConfigError(
                f"agent {self.label!r}: unknown prompt {self.prompt!r}",
                where=where,
                fix="agent.prompt=compact (small local models) or agent.prompt=full",
            )
        self.max_tokens_param = str(self.cfg.get("max_tokens_param", "max_tokens"))
        if self.max_tokens_param not in ("max_tokens", "max_completion_tokens"):
            raise ConfigError(
                f"agent {self.label!r}: unknown max_tokens_param {self.max_tokens_param!r}",
                where=where,
                fix="agent.max_tokens_param=max_tokens or agent.max_tokens_param=max_completion_tokens",
            )
        temperature = self.cfg.get("temperature")
        self.temperature = None if temperature is None else self._number("temperature", temperature)
        max_tokens = self.cfg.get("max_tokens")
        self.max_tokens = None if max_tokens is None else int(self._number("max_tokens", max_tokens, 1))
        self.max_repairs = int(self._number("max_repairs", self.cfg.get("max_repairs", 2)))
        self.max_retries = int(self._number("max_retries", self.cfg.get("max_retries", 4)))
        self.timeout_s = self._number("timeout_s", self.cfg.get("timeout_s", 300), 1e-3)
        self.backoff_s = self._number("backoff_s", self.cfg.get("backoff_s", 5.0))
        self.max_outage_calls = int(
            self._number("max_outage_calls", self.cfg.get("max_outage_calls", 5), minimum=1)
        )
        self.history_tokens = int(self._number("history_tokens", self.cfg.get("history_tokens", 6000)))
        self.price_prompt = self._number("price_prompt_per_mtok", self.cfg.get("price_prompt_per_mtok", 0.0))
        self.price_completion = self._number(
            "price_completion_per_mtok", self.cfg.get("price_completion_per_mtok", 0.0)
        )
        per_step = self.cfg.get("proposals_per_step")
        self.proposals_per_step = (
            None if per_step is None else int(self._number("proposals_per_step", per_step))
        )
        grammar = self.cfg.get("grammar", False)
        if not isinstance(grammar, bool):
            raise ConfigError(
                f"agent {self.label!r}: grammar must be true or false, got {grammar!r}",
                where="agent.grammar=",
                fix="agent.grammar=true (llama.cpp-compatible servers) or agent.grammar=false",
            )
        if grammar and self.edit_format != "whole":
            raise ConfigError(
                f"agent {self.label!r}: agent.grammar=true constrains replies to one whole file",
                where="agent.grammar=",
                fix="agent.edit_format=whole with agent.grammar=true",
            )
        self.grammar = grammar
        extra = self.cfg.get("extra_body") or {}
        if not isinstance(extra, Mapping):
            raise ConfigError(
                f"agent {self.label!r}: extra_body must be a mapping, got {extra!r}", where=where
            )
        self.extra_body = dict(extra)
        self._client: openai.OpenAI | None = None
        self._conversations: OrderedDict[str, _Conversation] = OrderedDict()
        self._outage_calls = 0
        """Calls in a row that gave up on transport failures (reset by any answer)."""
        self._failed_attempts = 0
        """Attempts in a row that failed on transport errors, across calls: pauses grow through an outage."""
        self._cancelled = threading.Event()

    def _number(self, key: str, value: Any, minimum: float = 0.0) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            raise ConfigError(
                f"agent {self.label!r}: {key} must be a number >= {minimum:g}, got {value!r}",
                where=f"agent.{key}=",
            )
        return float(value)

    # --- readiness -------------------------------------------------------------------------------

    def check_ready(self) -> None:
        """The API key's variable must be set (no network call is made here)."""
        if self.api_key_env and not os.environ.get(self.api_key_env, "").strip():
            raise ConfigError(
                f"agent {self.label!r} needs the environment variable {self.api_key_env}",
                fix=f"export {self.api_key_env}=... (or use agent=evolve, which needs no key)",
            )

    def _api_key(self) -> str:
        if self.api_key_env:
            self.check_ready()
            return os.environ[self.api_key_env].strip()
        return DUMMY_API_KEY

    @property
    def client(self) -> openai.OpenAI:
        if self._client is None:
            # The HTTP library logs every request at INFO, which Hydra's console shows: a line per attempt.
            # Failed calls are told once by us; a level the user set is left alone.
            for name in ("httpx", "httpx2"):
                if logging.getLogger(name).level == logging.NOTSET:
                    logging.getLogger(name).setLevel(logging.WARNING)
            self._client = openai.OpenAI(
                base_url=self.base_url,
                api_key=self._api_key(),
                # One retry layer, ours (see _complete): the client's would multiply the attempts, log each
                # retry and hide from us why a call failed.
                max_retries=0,
                timeout=self.timeout_s,
            )
        return self._client

    def cancel(self) -> None:
        """Stop waiting for any request in flight and make no more (the campaign is being interrupted)."""
        self._cancelled.set()
        self._drop_client()

    def _drop_client(self) -> None:
        """Forget the client; close it in the background (its connection may sit under an abandoned request,
        and closing must not wait for that request's lock)."""
        client, self._client = self._client, None
        if client is not None:
            threading.Thread(target=_close_quietly, args=(client,), name="llm-close", daemon=True).start()

    def sustained_outage(self) -> str:
        """Why the agent arm should stop: ``max_outage_calls`` calls in a row gave up on transport errors."""
        if self._outage_calls < self.max_outage_calls:
            return ""
        return (
            f"the endpoint {self._endpoint()} gave no answer to {self._outage_calls} calls in a row "
            f"({self.outage}); resume with the same command once it answers again"
        )

    # --- the preflight ---------------------------------------------------------------------------

    def check_endpoint(self) -> None:
        """Before the campaign records anything: a server answers at ``base_url``, takes the key and serves
        ``model``; else :class:`~afr.errors.EndpointError` (one line, exit code 2).

        ``GET /models`` settles it when it lists the model. Otherwise (single-model servers that ignore the
        name, endpoints without the route or with another auth for it) a one-token chat call decides; that
        call is not recorded in the ledger. A missing key is :meth:`check_ready`'s to report."""
        if self.api_key_env and not os.environ.get(self.api_key_env, "").strip():
            return
        quick = self.client.with_options(max_retries=0, timeout=min(self.timeout_s, PREFLIGHT_TIMEOUT_S))
        listed: list[str] | None = None
        try:
            listed = [str(m.id) for m in quick.models.list().data]
        except openai.APIConnectionError as exc:  # a timeout too: /models needs no generation
            raise self._unreachable(exc) from exc
        except openai.APIStatusError:
            pass  # the server answers; whether the model and key are good, the chat call below tells
        if listed is not None and self.model in listed:
            return
        request: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": "Reply with OK."}],
            self.max_tokens_param: 1,
        }
        try:
            quick.chat.completions.create(**request)
        except openai.APITimeoutError:
            return  # the server is up (it answered or accepted the connection); generation is slow
        except openai.APIConnectionError as exc:
            raise self._unreachable(exc) from exc
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise self._key_error(exc, "was refused") from exc
        except openai.NotFoundError as exc:
            served = f" (it lists: {', '.join(listed[:8])})" if listed else ""
            raise EndpointError(
                f"agent {self.label!r}: the endpoint {self._endpoint()} does not serve the model "
                f"{self.model!r}{served}: {_message(exc)}",
                where=f"agent={self.label}",
                fix="set agent.model=<a model the server serves>",
            ) from exc
        except openai.APIStatusError:
            return  # rejected parameters, a busy server: the first real call says what it is, with details

    def _unreachable(self, exc: Exception) -> EndpointError:
        start = "start the server" if self.label == "local" else "check the network"
        return EndpointError(
            f"agent {self.label!r}: no answer from {self._endpoint()} ({_message(exc)})",
            where=f"agent={self.label}",
            fix=f"{start} or set agent.base_url=<the server's /v1 URL>; agent=evolve needs no server",
        )

    # --- the agent interface ---------------------------------------------------------------------

    def propose(self, ctx: AgentContext, n: int) -> list[Proposal]:
        """Up to ``n`` new candidates, one API call each (plus one re-ask for an unusable reply)."""
        if self.proposals_per_step is not None:
            n = min(n, self.proposals_per_step)
        if n <= 0:
            return []
        opening = _prompt.opening_messages(ctx, self.prompt, self.edit_format, self.history_tokens)
        best = ctx.best[0] if ctx.best and ctx.best[0].source.strip() else None
        if best is not None:
            parent, parent_id = best.source, best.candidate_id
            label = f"{best.label}, the best so far"
        else:
            parent, parent_id = ctx.baseline.text, None
            label = f"the baseline, {ctx.baseline.label}"
        proposals: list[Proposal] = []
        notes: list[str] = []
        for slot in range(n):
            user = _prompt.propose_message(
                ctx,
                self.edit_format,
                slot=slot,
                slots=n,
                parent_label=label,
                parent_source=parent,
                earlier_notes=notes,
            )
            conv = _Conversation(messages=[*opening, {"role": "user", "content": user}], parent=parent)
            outcome = self._ask(conv, "propose", ctx)
            if outcome is None:
                if conv.calls == 0 or self.outage:
                    break  # the endpoint is out of reach after all retries: the other slots would be too
                continue
            parsed, reply = outcome
            conv.note = parsed.note
            notes.append(parsed.note or f"(proposal {slot + 1}: no rationale given)")
            proposal = Proposal(
                source=parsed.source,
                parent_id=parent_id if parsed.kind == "search_replace" else None,
                note=parsed.note,
                meta=self._meta(reply, parsed, conv),
            )
            self._remember(parsed.source, conv)
            proposals.append(proposal)
        return proposals

    def repair(self, ctx: AgentContext, proposal: Proposal, errors: list[str]) -> Proposal | None:
        """A corrected ``proposal`` given the messages verbatim; None once its repair tries are used."""
        conv = self._conversations.get(proposal.source)
        if conv is not None and conv.repairs >= self.max_repairs:
            return None
        if conv is None:  # e.g. a campaign resumed in a new process: start from the file itself
            opening = _prompt.opening_messages(ctx, self.prompt, self.edit_format, self.history_tokens)
            label = _parent_label(ctx, proposal.parent_id)
            user = _prompt.fresh_repair_message(
                errors, self.edit_format, proposal.source, proposal.note, label
            )
            conv = _Conversation(
                messages=[*opening, {"role": "user", "content": user}],
                parent=proposal.source,
                note=proposal.note,
            )
            mark = None
        else:
            conv.parent = proposal.source
            mark = len(conv.messages)
            show_file = self.edit_format == "search_replace"
            conv.messages.append(
                {
                    "role": "user",
                    "content": _prompt.repair_message(errors, self.edit_format, proposal.source, show_file),
                }
            )
        if self.max_repairs < 1:
            return None
        conv.repairs += 1
        calls = conv.calls
        outcome = self._ask(conv, "repair", ctx)
        if outcome is None:
            if mark is not None and conv.calls == calls:
                del conv.messages[mark:]  # the endpoint never answered: keep the conversation as it was
            return None
        parsed, reply = outcome
        meta = self._meta(reply, parsed, conv)
        if parsed.note:
            meta["repair_note"] = parsed.note
        self._remember(parsed.source, conv)
        return Proposal(source=parsed.source, parent_id=None, note=conv.note or parsed.note, meta=meta)

    # --- one exchange ----------------------------------------------------------------------------

    def _ask(self, conv: _Conversation, purpose: str, ctx: AgentContext) -> tuple[ParsedReply, _Reply] | None:
        """Send the conversation; parse the reply, re-asking once with the parse error if it is unusable."""
        reply = self._complete(conv, purpose, ctx)
        if reply is None:
            return None
        try:
            return self._parse(reply, conv, ctx), reply
        except ReplyError as exc:
            error = str(exc)
        if conv.repairs >= self.max_repairs:
            log.warning("agent %s: unusable reply, no repair tries left: %s", self.label, error)
            return None
        conv.repairs += 1
        conv.messages.append({"role": "user", "content": _prompt.reparse_message(error, self.edit_format)})
        reply = self._complete(conv, "retry", ctx)
        if reply is None:
            return None
        try:
            return self._parse(reply, conv, ctx), reply
        except ReplyError as exc:
            log.warning("agent %s: unusable reply after a re-ask, dropping the proposal: %s", self.label, exc)
            return None

    @staticmethod
    def _parse(reply: _Reply, conv: _Conversation, ctx: AgentContext) -> ParsedReply:
        """The reply's recipe file: a whole file counts only if Python's parser finds in it a class derived
        from the baseline or a recipe base (a user's baseline edited in place may derive from ``Recipe``)."""
        brief = ctx.task_brief()
        extra = () if brief.baseline.shipped else ("Recipe",)
        bases = tuple(dict.fromkeys((brief.baseline.class_name, *brief.recipe_bases, *extra)))
        return parse_reply(reply.text, conv.parent, finish_reason=reply.finish_reason, bases=bases)

    def _complete(self, conv: _Conversation, purpose: str, ctx: AgentContext) -> _Reply | None:
        """One chat completion; the reply is appended to the conversation. None when the call gives up.

        The only retry layer: ``1 + max_retries`` attempts per call (local: 3, claude/openai: 5). Before each
        attempt that follows a transport failure — in this call or the calls before it — a pause of
        ``backoff_s`` doubling per failed attempt, up to MAX_BACKOFF_S, or the server's Retry-After (capped
        the same); an answer resets it. So a blip costs seconds, and a dead endpoint gets
        ``max_outage_calls`` calls (local: 15 attempts over ~10 min; claude/openai: 25 over ~21 min, long
        enough for a server restart or a rate-limit window) before the agent arm stops."""
        if self._cancelled.is_set():
            return None
        request: dict[str, Any] = {"model": self.model, "messages": list(conv.messages)}
        if self.temperature is not None:
            request["temperature"] = self.temperature
        if self.max_tokens is not None:
            request[self.max_tokens_param] = self.max_tokens
        extra_body = dict(self.extra_body)
        if self.grammar:  # a grammar given in extra_body wins
            extra_body.setdefault("grammar", reply_grammar(ctx.task_brief()))
        if extra_body:
            request["extra_body"] = extra_body
        last: Exception | None = None
        clock = _Clock(purpose, request)
        for _ in range(self.max_retries + 1):
            if self._failed_attempts:
                pause = min(self.backoff_s * 2 ** min(self._failed_attempts - 1, 16), MAX_BACKOFF_S)
                pause = min(_retry_after(last, pause), MAX_BACKOFF_S)
                log.debug(
                    "agent %s: %d failed attempt(s); next in %.1fs", self.label, self._failed_attempts, pause
                )
                if self._cancelled.wait(pause):
                    return None
            clock.attempts += 1
            try:
                response = self._request(request)
            except _Cancelled:
                return None
            except _RETRYABLE as exc:
                if isinstance(exc, openai.RateLimitError) and _code(exc) == "insufficient_quota":
                    raise self._key_error(exc, "has no quota left") from exc
                last = exc
                self._failed_attempts += 1
                continue
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                raise self._key_error(exc, "was refused") from exc
            except (openai.NotFoundError, openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                if _CONTEXT_ERROR.search(_message(exc)):
                    raise self._context_error(exc, request) from exc
                raise ConfigError(
                    f"agent {self.label!r}: the endpoint {self._endpoint()} rejected the request for model "
                    f"{self.model!r}: {_message(exc)}",
                    where=f"agent={self.label}",
                    fix="check agent.model, agent.base_url, agent.temperature, agent.max_tokens_param and "
                    "agent.extra_body (or lower agent.history_tokens if the prompt is too long)",
                ) from exc
            except openai.OpenAIError as exc:
                # An answer we cannot use (e.g. a 4xx no retry fixes): the model was reached, not an outage.
                self.outage, self._outage_calls, self._failed_attempts = "", 0, 0
                log.warning("agent %s: %s call failed, no proposal: %s", self.label, purpose, _message(exc))
                meta = {"purpose": purpose, "agent": self.label, "step": ctx.step}
                self.record_usage(Usage(model=self.model, meta=meta, call=clock.log(error=_message(exc))))
                return None
            conv.calls += 1
            self.outage, self._outage_calls, self._failed_attempts = "", 0, 0
            return self._accept(conv, response, purpose, ctx, clock)
        self.outage = _message(last) if last is not None else "unknown error"
        self._outage_calls += 1
        # Booked with no tokens, so the ledger's cost table shows which calls the outage took, and why.
        meta = {"purpose": purpose, "agent": self.label, "step": ctx.step, "outage": self.outage}
        self.record_usage(
            Usage(
                model=self.model,
                meta={**meta, "attempts": self.max_retries + 1},
                call=clock.log(error=self.outage),
            )
        )
        log.warning(
            "agent %s: %s call to %s failed after %d tries, no proposal (not counted as fruitless): %s",
            self.label,
            purpose,
            self._endpoint(),
            self.max_retries + 1,
            self.outage,
        )
        return None

    def _request(self, request: dict[str, Any]) -> Any:
        """``chat.completions.create`` in a daemon thread, waited on here.

        A blocking HTTP read cannot be interrupted from outside its thread: waiting in short slices lets a
        Ctrl-C (main thread) or :meth:`cancel` (for a call in a worker thread) end the wait at once; the
        abandoned request's thread is a daemon, so it does not hold the process at exit."""
        client = self.client
        box: dict[str, Any] = {}
        done = threading.Event()

        def call() -> None:
            try:
                box["response"] = client.chat.completions.create(**request)
            except BaseException as exc:  # handed to the caller's thread
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=call, name=f"llm-{self.label}", daemon=True).start()
        try:
            while not done.wait(_POLL_S):
                if self._cancelled.is_set():
                    raise _Cancelled
        except BaseException:  # a KeyboardInterrupt here, or the cancel above
            self._drop_client()
            raise
        if "error" in box:
            raise box["error"]
        return box["response"]

    def _accept(
        self, conv: _Conversation, response: Any, purpose: str, ctx: AgentContext, clock: _Clock
    ) -> _Reply:
        usage = getattr(response, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        money = (prompt_tokens * self.price_prompt + completion_tokens * self.price_completion) / 1e6
        choices = getattr(response, "choices", None) or []
        message = choices[0].message if choices else None
        text = (getattr(message, "content", None) or "") if message is not None else ""
        finish = getattr(choices[0], "finish_reason", None) if choices else None
        self.record_usage(
            Usage(
                model=self.model,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                money_usd=money,
                meta={"purpose": purpose, "agent": self.label, "step": ctx.step},
                call=clock.log(reply=text, finish_reason=finish),
            )
        )
        conv.messages.append({"role": "assistant", "content": text})
        return _Reply(text=text, finish_reason=finish)

    # --- helpers ---------------------------------------------------------------------------------

    def _meta(self, reply: _Reply, parsed: ParsedReply, conv: _Conversation) -> dict[str, Any]:
        return {
            "model": self.model,
            "edit_format": self.edit_format,
            "reply_format": parsed.kind,
            "raw_reply_chars": len(reply.text),
            "calls": conv.calls,
        }

    def _remember(self, source: str, conv: _Conversation) -> None:
        self._conversations[source] = conv
        self._conversations.move_to_end(source)
        while len(self._conversations) > MAX_CONVERSATIONS:
            self._conversations.popitem(last=False)

    def _endpoint(self) -> str:
        return self.base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"

    def _context_error(self, exc: Exception, request: Mapping[str, Any]) -> ConfigError:
        """The server's context cannot hold the prompt plus the completion cap: say both numbers."""
        prompt = sum(_prompt.approx_tokens(m.get("content") or "") for m in request.get("messages", []))
        cap = self.max_tokens or 0
        need = prompt + cap
        return ConfigError(
            f"agent {self.label!r}: the server's context is too small for the prompt (~{prompt} tokens) plus "
            f"agent.max_tokens={cap} ({_message(exc)})",
            where=f"agent={self.label}",
            fix=f"start the server with a context of at least {_round_up(need)} tokens (llama.cpp: "
            f"-c {_round_up(need)}) or lower agent.max_tokens; agent.prompt=compact shrinks the prompt",
        )

    def _key_error(self, exc: Exception, what: str) -> ConfigError:
        if self.api_key_env:
            return ConfigError(
                f"agent {self.label!r}: the key in {self.api_key_env} {what} ({_message(exc)})",
                fix=f"export a valid {self.api_key_env}=... (or use agent=evolve, which needs no key)",
            )
        return ConfigError(
            f"agent {self.label!r}: the endpoint {self._endpoint()} {what} without a key ({_message(exc)})",
            fix="set agent.api_key_env=<VARIABLE> naming a variable that holds the server's key",
        )


_CONTEXT_ERROR = re.compile(
    r"context (window|length|size)|n_ctx|maximum context|exceeds? the available context|too many tokens",
    re.IGNORECASE,
)
"""How servers say a request does not fit their context (llama.cpp, llama-cpp-python, vLLM, OpenAI)."""


def _round_up(tokens: int) -> int:
    """``tokens`` rounded up to a multiple of 1024 (context sizes are usually given so)."""
    return max(1024, -(-tokens // 1024) * 1024)


class _Clock:
    """Times one call from its first attempt, for its :class:`CallLog`."""

    def __init__(self, purpose: str, request: Mapping[str, Any]) -> None:
        self.purpose = purpose
        self.request = dict(request)
        self.attempts = 0
        self.started_at = datetime.now(UTC)
        self._start = time.monotonic()

    def log(self, *, reply: str = "", finish_reason: str | None = None, error: str = "") -> CallLog:
        return CallLog(
            purpose=self.purpose,
            request=self.request,
            reply=reply,
            finish_reason=finish_reason,
            latency_s=time.monotonic() - self._start,
            attempts=self.attempts,
            error=error,
            started_at=self.started_at,
            finished_at=datetime.now(UTC),
        )


class _Cancelled(Exception):
    """:meth:`LLMAgent.cancel` was called while a request was in flight."""


def _close_quietly(client: openai.OpenAI) -> None:
    with contextlib.suppress(Exception):  # best effort: the process stops or the client is replaced
        client.close()


def _retry_after(exc: BaseException | None, default: float) -> float:
    """The server's ``Retry-After`` (seconds) when the failure carries one, else ``default``."""
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else default
    except ValueError:  # an HTTP date: not worth parsing, the doubling pause stands
        return default


def _message(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and inner.get("message"):
            return str(inner["message"])
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _code(exc: BaseException) -> str | None:
    code = getattr(exc, "code", None)
    return str(code) if code else None


def _parent_label(ctx: AgentContext, parent_id: int | None) -> str:
    """How a repair names the file's parent: its campaign name when the context has it."""
    if parent_id is None:
        return "a candidate"
    for item in (*ctx.history, *ctx.best, *ctx.recent_failures):
        if item.candidate_id == parent_id:
            return item.label
    return f"candidate {parent_id}"
