"""Judge backends: any OpenAI-compatible chat completions server, or a local transformers causal LM.

A backend turns chat messages into answer text. It does not parse or validate the answer
(`judge.py` does), and it does not cache (`cache.py`). The OpenAI backend retries transport
failures; what is left after its retries is raised as `TransportError`, which the caller
records as a verdict with status `error`. `FatalBackendError` (bad key, unknown model or
URL) stops the run as bad input: every further request would fail the same way.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from videotune.core.io import InputError

log = logging.getLogger("videotune.judge")

API_KEY_ENV = ("VT_JUDGE_API_KEY", "OPENAI_API_KEY")
# The order in which structured output is asked for; a server that answers 400 to one is
# asked again with the next, and once a lower one has worked the run keeps to it.
FORMATS = ("json_schema", "json_object", "plain")
# A Retry-After beyond this is treated as this: a broken header should not park the run for hours.
RETRY_AFTER_CEILING_S = 600.0


class TransportError(Exception):
    """The judge could not be reached or kept failing after the retries: the verdict is `error`."""


class FatalBackendError(InputError):
    """The server refuses every request (authentication, unknown model or URL): the run stops.

    Bad input (a wrong --base-url, --model or API key): exit 2, verdicts already written are kept.
    """


class _BadRequest(Exception):
    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


@dataclass
class Counter:
    """Thread-safe counts of what a run cost (HTTP requests, cache hits)."""

    values: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.values[name] = self.values.get(name, 0) + n

    def get(self, name: str) -> int:
        with self._lock:
            return self.values.get(name, 0)


class Backend(Protocol):
    judge: str  # what verdicts record as `judge`, and part of the cache key
    sampling: dict[str, Any]  # sampling parameters: part of the cache key
    counter: Counter

    def complete(self, messages: list[dict[str, str]], schema: dict[str, Any], schema_name: str) -> str: ...

    def close(self) -> None: ...


def api_key_from_env() -> str | None:
    """The API key, only ever from the environment, so it never lands in run.json, argv or a log."""
    for name in API_KEY_ENV:
        value = os.environ.get(name)
        if value:
            return value
    return None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds (RFC 9110; decimals accepted) or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (now if now is not None else datetime.now(UTC).timestamp())
    return min(max(seconds, 0.0), RETRY_AFTER_CEILING_S)


class OpenAIBackend:
    """POST {base_url}/chat/completions, temperature 0 and a fixed seed, structured output where served."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        seed: int = 0,
        max_tokens: int = 512,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        concurrency: int = 4,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.judge = f"openai:{model}"
        self.sampling = {"temperature": 0.0, "seed": seed, "max_tokens": max_tokens}
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.counter = Counter()
        self._sleep = sleep
        # Jitter spreads the retries of concurrent workers; it only affects waiting, never results.
        self._jitter = random.Random()
        self._format = 0
        self._format_lock = threading.Lock()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=self.base_url + "/",
            headers=headers,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )

    @property
    def response_format(self) -> str:
        return FORMATS[self._format]

    def close(self) -> None:
        self._client.close()

    def _payload(self, messages: list[dict[str, str]], schema: dict[str, Any], schema_name: str, level: int) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": self.model, "messages": messages, **self.sampling}
        if FORMATS[level] == "json_schema":
            payload["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": schema_name, "schema": schema, "strict": True},
            }
        elif FORMATS[level] == "json_object":
            payload["response_format"] = {"type": "json_object"}
        return payload

    def complete(self, messages: list[dict[str, str]], schema: dict[str, Any], schema_name: str) -> str:
        level = self._format
        while True:
            try:
                text = self._request(self._payload(messages, schema, schema_name, level))
            except _BadRequest as err:
                if level + 1 >= len(FORMATS):
                    raise TransportError(f"the server refused the request (HTTP 400): {err.detail}") from None
                log.info("server answered 400 to response_format=%s (%s); asking with %s",
                         FORMATS[level], err.detail[:200], FORMATS[level + 1])
                level += 1
                continue
            with self._format_lock:
                # Only now is it known that the 400 was about the format (the lower one worked):
                # later requests start there instead of paying a 400 each.
                if level > self._format:
                    log.warning("the server does not accept response_format=%s; using %s from now on",
                                FORMATS[self._format], FORMATS[level])
                    self._format = level
            return text

    def _request(self, payload: dict[str, Any]) -> str:
        problem = ""
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            wait: float | None = None
            self.counter.add("requests")
            try:
                response = self._client.post("chat/completions", json=payload)
            except httpx.TimeoutException as err:
                problem = f"timed out ({type(err).__name__})"
            except httpx.TransportError as err:
                problem = f"{type(err).__name__}: {err}"
            else:
                code = response.status_code
                if code == 200:
                    text = _content(response)
                    if text is not None:
                        return text
                    # A 200 whose body is not a chat completion is a server or proxy glitch: retry.
                    problem = f"HTTP 200 with a body that is not a chat completion: {response.text[:200]!r}"
                elif code == 429 or code >= 500:
                    problem = f"HTTP {code}: {response.text[:200]}"
                    wait = parse_retry_after(response.headers.get("retry-after"))
                elif code == 400:
                    raise _BadRequest(response.text[:500])
                elif code in (401, 403, 404):
                    raise FatalBackendError(
                        f"HTTP {code} from {response.request.url}: {response.text[:300]} "
                        f"(check the base URL, the model name and the API key in ${API_KEY_ENV[0]})"
                    )
                else:
                    raise TransportError(f"HTTP {code}: {response.text[:300]}")
            if attempt + 1 == attempts:
                break
            if wait is None:
                ceiling = min(self.max_backoff_s, self.backoff_s * 2**attempt)
                wait = ceiling / 2 + self._jitter.uniform(0, ceiling / 2)
            self.counter.add("retries")
            log.info("judge request failed (%s); retry %d/%d in %.2f s", problem, attempt + 1, self.max_retries, wait)
            self._sleep(wait)
        raise TransportError(f"gave up after {attempts} attempts: {problem}")


def _content(response: httpx.Response) -> str | None:
    try:
        body = response.json()
        content = body["choices"][0]["message"].get("content")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
    # A null content (a refusal, or a tool call) is an answer without JSON: validation rejects it.
    return content if isinstance(content, str) else ""


class HFBackend:
    """A local transformers causal LM by path (or hub id where a hub is reachable), greedy decoding."""

    def __init__(
        self,
        model: str,
        seed: int = 0,
        max_tokens: int = 512,
        load_in_8bit: bool = False,
        trust_remote_code: bool = False,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.judge = f"hf:{model}"
        self.seed = seed
        self.sampling = {"temperature": 0.0, "seed": seed, "max_tokens": max_tokens,
                         "quantization": "8bit" if load_in_8bit else "none"}
        self.max_tokens = max_tokens
        self.counter = Counter()
        self._lock = threading.Lock()
        cuda = torch.cuda.is_available()
        kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
        if load_in_8bit:
            if not cuda:
                raise InputError("--load-in-8bit needs a CUDA device (bitsandbytes 8-bit runs on GPU only)")
            try:
                import bitsandbytes  # noqa: F401
            except ImportError:
                raise InputError("--load-in-8bit needs bitsandbytes: pip install bitsandbytes") from None
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        if cuda:
            kwargs.update(dtype="auto", device_map="auto")
        else:
            kwargs.update(dtype=torch.float32)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
            self.model = AutoModelForCausalLM.from_pretrained(model, **kwargs)
        except OSError as err:
            raise InputError(f"cannot load the judge model from {model!r}: {err}") from err
        self.model.eval()

    def close(self) -> None:
        pass

    def _prompt_ids(self, messages: list[dict[str, str]]):
        if self.tokenizer.chat_template:
            try:
                return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                          return_dict=True)["input_ids"]
            except Exception:  # noqa: BLE001 - jinja raises its own TemplateError
                # Some templates (Mixtral's) refuse a system turn: fold it into the first user turn.
                if messages and messages[0]["role"] == "system" and len(messages) > 1:
                    merged = [{"role": messages[1]["role"], "content": messages[0]["content"] + "\n\n" + messages[1]["content"]}]
                    return self._prompt_ids(merged + messages[2:])
                raise
        # No chat template (a base model): a plain transcript that ends where the judge speaks.
        text = "".join(f"{m['role'].capitalize()}: {m['content']}\n\n" for m in messages) + "Assistant:"
        return self.tokenizer(text, return_tensors="pt")["input_ids"]

    def complete(self, messages: list[dict[str, str]], schema: dict[str, Any], schema_name: str) -> str:
        import torch

        from videotune.core import models

        # One generation at a time: a single model on one device gains nothing from threads.
        with self._lock:
            self.counter.add("requests")
            input_ids = self._prompt_ids(messages)
            torch.manual_seed(self.seed)
            answers = models.generate(
                self.model, self.tokenizer, {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)},
                max_new_tokens=self.max_tokens,
                stop_ids=models.stop_token_ids(self.tokenizer, generation_config=self.model.generation_config),
            )
            return answers.texts[0]


def make_backend(
    kind: str,
    base_url: str | None,
    model: str | None,
    seed: int,
    max_tokens: int,
    timeout_s: float,
    max_retries: int,
    backoff_s: float,
    max_backoff_s: float,
    concurrency: int,
    load_in_8bit: bool = False,
    trust_remote_code: bool = False,
) -> Backend:
    """The backend named `kind`; base URL and model fall back to $VT_JUDGE_BASE_URL / $VT_JUDGE_MODEL."""
    model = model or os.environ.get("VT_JUDGE_MODEL")
    if not model:
        raise InputError("no judge model: pass --model or set VT_JUDGE_MODEL")
    if kind == "openai":
        base_url = base_url or os.environ.get("VT_JUDGE_BASE_URL")
        if not base_url:
            raise InputError("no judge server: pass --base-url (e.g. http://127.0.0.1:8000/v1) or set VT_JUDGE_BASE_URL")
        if not base_url.startswith(("http://", "https://")):
            raise InputError(f"--base-url {base_url!r} must start with http:// or https://")
        return OpenAIBackend(
            base_url, model, api_key=api_key_from_env(), seed=seed, max_tokens=max_tokens, timeout_s=timeout_s,
            max_retries=max_retries, backoff_s=backoff_s, max_backoff_s=max_backoff_s, concurrency=concurrency,
        )
    if kind == "hf":
        try:
            import torch  # noqa: F401
            import transformers  # noqa: F401
        except ImportError:
            raise InputError("--backend hf needs torch and transformers: pip install 'videotune[judge,models]'") from None
        return HFBackend(model, seed=seed, max_tokens=max_tokens, load_in_8bit=load_in_8bit,
                         trust_remote_code=trust_remote_code)
    raise InputError(f"unknown backend {kind!r}: openai or hf")
