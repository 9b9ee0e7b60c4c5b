"""``Notifier``: alerts from ``trader run`` to webhooks, off the trading step.

The step only hands each committed record to :meth:`Notifier.observe`, which turns it into
alerts and appends them to one bounded queue per target (no I/O, no formatting). One
daemon thread per target sends them: a POST with ``timeout_s``, retried ``retries`` times
on a connection error, a timeout, HTTP 429 or 5xx, waiting ``backoff_s`` doubled each time
(or the receiver's ``Retry-After``, at most 60 s). A slow or dead receiver delays only its
own thread; a full queue (``queue`` alerts) drops the new alert. At most
``max_per_minute`` alerts a target (a token bucket); the next one sent says how many were
not. Halts and resumes go past both limits (a halt takes the place of the oldest alert
of a full queue). :meth:`Notifier.close` gives the threads ``flush_s`` to finish at exit.

Anything logged about a target passes through :func:`redact`: its secret URL and bot
token, and any ``/bot<token>`` path, never appear in a log line or an error.
"""

from __future__ import annotations

import http.client
import logging
import re
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from trader.notify.alerts import Alert, alerts_from_record
from trader.notify.formats import payload
from trader.notify.settings import KINDS, NotifySettings, Target, resolve_targets

if TYPE_CHECKING:
    from trader.engine.records import StepRecord

__all__ = ["Notifier", "redact"]

log = logging.getLogger("trader.notify")

REDACTED = "<redacted>"
_BOT_PATH = re.compile(r"/bot[^/\s?#]+")
_BOT_TOKEN = re.compile(r"\b\d{3,}:[A-Za-z0-9_-]{20,}")
_MAX_WAIT_S = 60.0
#: Kinds that go past the rate limit and the queue bound: the operator must hear of a halt.
_URGENT = frozenset({"halt"})


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with each of ``secrets``, any ``/bot<token>`` path and anything shaped like a bot token replaced."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _BOT_PATH.sub("/bot" + REDACTED, text)
    return _BOT_TOKEN.sub(REDACTED, text)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A webhook that redirects is refused: the body (and a URL's secret) goes only where it was configured."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_NoRedirect())


def _retry_after(headers: Any) -> float | None:
    try:
        value = float(headers.get("Retry-After", ""))
    except (TypeError, ValueError):
        return None
    return value if value >= 0 else None


class _TargetSender(threading.Thread):
    """One target's queue and the daemon thread that empties it."""

    def __init__(self, target: Target, settings: NotifySettings, opener: urllib.request.OpenerDirector) -> None:
        super().__init__(name=f"trader-notify-{target.name}", daemon=True)
        self.target = target
        self.settings = settings
        self.opener = opener
        self.items: deque[tuple[Alert, bool]] = deque()
        self.cv = threading.Condition()
        self.closed = False
        self.abandon = threading.Event()
        self.capacity = float(settings.max_per_minute)
        self.tokens = self.capacity
        self.stamp = time.monotonic()
        self.not_sent = 0  # since the last alert delivered (rate limit, full queue)
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self._overflow_logged = False

    def describe(self) -> str:
        return redact(f"{self.target.name} ({self.target.label})", self.target.secrets)

    # ------------------------------------------------------------------ the step's side: no I/O

    def put(self, alert: Alert, silent: bool) -> None:
        with self.cv:
            if len(self.items) >= self.settings.queue:
                if alert.kind not in _URGENT:
                    self._drop(1)
                    return
                self.items.popleft()
                self._drop(1)
            self.items.append((alert, silent))
            self.cv.notify()

    def _drop(self, count: int) -> None:
        self.dropped += count
        self.not_sent += count
        if not self._overflow_logged:
            self._overflow_logged = True
            log.warning("notify %s: %d alerts queued, the receiver is not keeping up: dropping alerts", self.target.name,
                        self.settings.queue)

    # ------------------------------------------------------------------ the thread

    def close(self) -> None:
        with self.cv:
            self.closed = True
            self.cv.notify()

    def pending(self) -> int:
        with self.cv:
            return len(self.items)

    def run(self) -> None:
        while True:
            with self.cv:
                while not self.items and not self.closed:
                    self.cv.wait()
                if not self.items:
                    return
                alert, silent = self.items.popleft()
            if self.abandon.is_set():
                self.failed += 1
                continue
            if alert.kind not in _URGENT and not self._take_token():
                with self.cv:
                    self.not_sent += 1
                continue
            self._deliver(alert, silent)

    def _take_token(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.capacity / 60.0)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def _deliver(self, alert: Alert, silent: bool) -> None:
        target = self.target
        with self.cv:
            not_sent = self.not_sent
        body = payload(target.format, alert, silent=silent, suppressed=not_sent, chat_id=target.chat_id)
        attempts = 1 + self.settings.retries
        error = ""
        for attempt in range(attempts):
            error, wait, retry = self._post(body)
            if not error:
                self.delivered += 1
                with self.cv:
                    self.not_sent -= not_sent
                    self._overflow_logged = False
                return
            log.debug("notify %s: attempt %d of %d failed: %s", target.name, attempt + 1, attempts, redact(error, target.secrets))
            if not retry or attempt + 1 == attempts:
                break
            delay = min(_MAX_WAIT_S, wait if wait is not None else self.settings.backoff_s * 2**attempt)
            if self.abandon.wait(delay):
                break
        self.failed += 1
        log.warning("notify %s: a %s alert was not delivered after %d attempt%s: %s", self.describe(), alert.kind,
                    attempt + 1, "" if attempt == 0 else "s", redact(error, target.secrets))

    def _post(self, body: bytes) -> tuple[str, float | None, bool]:
        """``("", ...)`` when delivered, else the error, the receiver's ``Retry-After`` and whether to retry."""
        request = urllib.request.Request(
            self.target.url, data=body, method="POST",
            headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": "trader-notify"},
        )
        try:
            with self.opener.open(request, timeout=self.settings.timeout_s) as response:
                response.read(65536)
            return "", None, False
        except urllib.error.HTTPError as exc:
            wait = _retry_after(exc.headers)
            exc.close()
            return f"HTTP {exc.code} {exc.reason}", wait, exc.code == 429 or exc.code >= 500
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            return f"{type(exc).__name__}: {reason}", None, True


class Notifier:
    """Sends the alerts of one strategy's run to the ``[notify]`` targets (see the module docstring).

    :meth:`observe` is what the trading session calls after each commit; it never raises
    and never waits on the network.
    """

    def __init__(self, settings: NotifySettings, strategy: str, *, opener: urllib.request.OpenerDirector | None = None) -> None:
        self.settings = settings
        self.strategy = strategy
        opener = opener or _opener()
        self._senders = tuple(_TargetSender(target, settings, opener) for target in settings.targets)
        routes: dict[str, list[tuple[_TargetSender, bool]]] = {kind: [] for kind in KINDS}
        for sender in self._senders:
            for kind, mode in sender.target.modes.items():
                if mode != "off":
                    routes[kind].append((sender, mode == "silent"))
        self._routes = {kind: tuple(found) for kind, found in routes.items()}
        self._failed_observe = False
        for sender in self._senders:
            sender.start()

    @classmethod
    def from_config(cls, config: Any, strategy: str, environ: Mapping[str, str] | None = None) -> Notifier | None:
        """The notifier of ``config``'s ``[notify]`` targets, or ``None`` without any.

        Raises :class:`~trader.errors.ConfigError` when a target's secret is missing from the environment.
        """
        settings = resolve_targets(config.section("notify"), environ)
        return None if settings is None else cls(settings, strategy)

    def describe(self) -> str:
        return ", ".join(sender.describe() for sender in self._senders)

    def observe(self, record: StepRecord) -> None:
        """Queue the alerts of a committed step (none for a quiet candle); never raises."""
        if not record.fills and not record.events:
            return
        try:
            for alert in alerts_from_record(record, self.strategy):
                self.send(alert)
        except Exception as exc:  # an alert must never fail the trading step
            if not self._failed_observe:
                self._failed_observe = True
                log.warning("notify: an alert could not be built: %s: %s", type(exc).__name__, exc)

    def send(self, alert: Alert) -> None:
        """Queue ``alert`` for every target that does not turn its kind off."""
        for sender, silent in self._routes.get(alert.kind, ()):
            sender.put(alert, silent)

    def stats(self) -> dict[str, dict[str, int]]:
        """Per target: alerts ``delivered``, ``failed`` (after every retry), ``dropped`` (full queue), ``pending``."""
        return {
            s.target.name: {"delivered": s.delivered, "failed": s.failed, "dropped": s.dropped, "pending": s.pending()}
            for s in self._senders
        }

    def close(self, flush_s: float | None = None) -> None:
        """Let the threads send what is queued for at most ``flush_s`` (default: the setting), then give up."""
        deadline = time.monotonic() + (self.settings.flush_s if flush_s is None else flush_s)
        for sender in self._senders:
            sender.close()
        for sender in self._senders:
            sender.join(max(0.0, deadline - time.monotonic()))
        for sender in self._senders:
            if sender.is_alive():
                sender.abandon.set()
                left = sender.pending() + 1
                log.warning("notify %s: %d alert%s not delivered: the receiver did not answer within %gs of the end of the run",
                            sender.describe(), left, "" if left == 1 else "s", self.settings.flush_s if flush_s is None else flush_s)
