"""``kind: llm`` — one agent for every OpenAI-compatible chat endpoint (Claude, OpenAI, a local server).

Configured by ``afr/conf/agent/{claude,openai,local}.yaml`` (any key overridable from the command
line, e.g. ``agent.model=...`` or ``agent.base_url=...``). Each proposal is one chat-completions call
with a deterministic prompt (:mod:`afr.agents._prompt`); the reply is parsed tolerantly
(:mod:`afr.agents._edits`). A reply that yields no file is answered once with the parse error; if it
still yields none, that proposal slot stays empty. :meth:`LLMAgent.repair` continues the proposal's
conversation with the validator's or run-time messages, at most ``max_repairs`` tries per proposal
(the parse-error retry counts as one).

Transport failures (429, 5xx, timeouts, connection errors) are retried by the ``openai`` client
(``max_retries``, exponential backoff, honouring ``Retry-After``) and then by an outer loop here
(``max_retries`` more tries, ``backoff_s`` doubling); after that the call yields nothing and a
warning is logged. Errors no retry can fix (bad key, unknown model, rejected parameters) raise
:class:`~afr.errors.ConfigError`.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import openai

from ..errors import ConfigError
from . import _prompt
from ._base import Agent, AgentContext, Proposal, Usage
from ._edits import ParsedReply, ReplyError, parse_reply

__all__ = ["LLMAgent", "DUMMY_API_KEY"]

log = logging.getLogger(__name__)

DUMMY_API_KEY = "sk-no-key-required"
"""Sent when ``api_key_env`` is null (local servers ignore the key, the client insists on one)."""

MAX_CONVERSATIONS = 128
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
        self.history_tokens = int(self._number("history_tokens", self.cfg.get("history_tokens", 6000)))
        self.price_prompt = self._number("price_prompt_per_mtok", self.cfg.get("price_prompt_per_mtok", 0.0))
        self.price_completion = self._number(
            "price_completion_per_mtok", self.cfg.get("price_completion_per_mtok", 0.0)
        )
        per_step = self.cfg.get("proposals_per_step")
        self.proposals_per_step = (
            None if per_step is None else int(self._number("proposals_per_step", per_step))
        )
        extra = self.cfg.get("extra_body") or {}
        if not isinstance(extra, Mapping):
            raise ConfigError(
                f"agent {self.label!r}: extra_body must be a mapping, got {extra!r}", where=where
            )
        self.extra_body = dict(extra)
        self._client: openai.OpenAI | None = None
        self._conversations: OrderedDict[str, _Conversation] = OrderedDict()

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
            self._client = openai.OpenAI(
                base_url=self.base_url,
                api_key=self._api_key(),
                max_retries=self.max_retries,
                timeout=self.timeout_s,
            )
        return self._client

    # --- the agent interface ---------------------------------------------------------------------

    def propose(self, ctx: AgentContext, n: int) -> list[Proposal]:
        """Up to ``n`` new candidates, one API call each (plus one re-ask for an unusable reply)."""
        if self.proposals_per_step is not None:
            n = min(n, self.proposals_per_step)
        if n <= 0:
            return []
        system = _prompt.system_message(ctx, self.edit_format, self.history_tokens)
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
            conv = _Conversation(
                messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
                parent=parent,
            )
            outcome = self._ask(conv, "propose", ctx)
            if outcome is None:
                if conv.calls == 0:
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
            system = _prompt.system_message(ctx, self.edit_format, self.history_tokens)
            label = _parent_label(ctx, proposal.parent_id)
            user = _prompt.fresh_repair_message(
                errors, self.edit_format, proposal.source, proposal.note, label
            )
            conv = _Conversation(
                messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
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
            return parse_reply(reply.text, conv.parent, finish_reason=reply.finish_reason), reply
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
            return parse_reply(reply.text, conv.parent, finish_reason=reply.finish_reason), reply
        except ReplyError as exc:
            log.warning("agent %s: unusable reply after a re-ask, dropping the proposal: %s", self.label, exc)
            return None

    def _complete(self, conv: _Conversation, purpose: str, ctx: AgentContext) -> _Reply | None:
        """One chat completion (with retries); the reply is appended to the conversation."""
        request: dict[str, Any] = {"model": self.model, "messages": list(conv.messages)}
        if self.temperature is not None:
            request["temperature"] = self.temperature
        if self.max_tokens is not None:
            request[self.max_tokens_param] = self.max_tokens
        if self.extra_body:
            request["extra_body"] = dict(self.extra_body)
        last: Exception | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                response = self.client.chat.completions.create(**request)
            except _RETRYABLE as exc:
                if isinstance(exc, openai.RateLimitError) and _code(exc) == "insufficient_quota":
                    raise self._key_error(exc, "has no quota left") from exc
                last = exc
                continue
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                raise self._key_error(exc, "was refused") from exc
            except (openai.NotFoundError, openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                raise ConfigError(
                    f"agent {self.label!r}: the endpoint {self._endpoint()} rejected the request for model "
                    f"{self.model!r}: {_message(exc)}",
                    where=f"agent={self.label}",
                    fix="check agent.model, agent.base_url, agent.temperature, agent.max_tokens_param and "
                    "agent.extra_body (or lower agent.history_tokens if the prompt is too long)",
                ) from exc
            except openai.OpenAIError as exc:
                log.warning("agent %s: %s call failed, no proposal: %s", self.label, purpose, _message(exc))
                return None
            conv.calls += 1
            return self._accept(conv, response, purpose, ctx)
        log.warning(
            "agent %s: %s call to %s failed after %d tries, no proposal: %s",
            self.label,
            purpose,
            self._endpoint(),
            self.max_retries + 1,
            _message(last) if last is not None else "unknown error",
        )
        return None

    def _accept(self, conv: _Conversation, response: Any, purpose: str, ctx: AgentContext) -> _Reply:
        usage = getattr(response, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        money = (prompt_tokens * self.price_prompt + completion_tokens * self.price_completion) / 1e6
        self.record_usage(
            Usage(
                model=self.model,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                money_usd=money,
                meta={"purpose": purpose, "agent": self.label, "step": ctx.step},
            )
        )
        choices = getattr(response, "choices", None) or []
        message = choices[0].message if choices else None
        text = (getattr(message, "content", None) or "") if message is not None else ""
        finish = getattr(choices[0], "finish_reason", None) if choices else None
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
