"""The plugin probe: import each entry point in a throw-away process and report what it is.

Whether a plugin is a strategy is only known once it is imported, and importing runs the
plugin's code. The probe does that import in a separate process (``python -I``, importing with
this process's ``sys.path``, the environment of :func:`~trader.childenv.strategy_environment`,
stdin closed, output discarded), one entry point at a time, and streams one JSON line per
plugin on a pipe of its own: name, hooks, whether it is a strategy, import time, error.

- Any exception at import, ``SystemExit`` and ``KeyboardInterrupt`` included, is that
  plugin's error; the probe goes on with the next one.
- A plugin that ends the process (``os._exit``, a crash, a signal) is reported as
  "import ended the process" and a new probe takes the remaining plugins.
- An import that takes longer than ``TRADER_PLUGIN_IMPORT_TIMEOUT`` seconds (default 30)
  is cut: the probe is killed and restarted for the remaining plugins.

Results are cached in a JSON file (``TRADER_HOME/cache/plugins.json`` from the CLI) keyed by
each entry point's name, target, distribution, version and the modification time of its
top-level module, so a command pays for the probe only when the installed plugins change.
The probe classifies; it is not a sandbox: the non-strategy plugins it finds are then
imported by the engine itself.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

from trader.entrypoints import PluginSpec, one_line
from trader.errors import ConfigError, PluginError

__all__ = ["ProbeResult", "probe", "import_timeout", "DEFAULT_IMPORT_TIMEOUT_S", "main"]

DEFAULT_IMPORT_TIMEOUT_S = 30.0
_CACHE_FORMAT = 1
#: The probe starts isolated (no PYTHONPATH, no current folder) and imports with this process's sys.path.
_BOOT = "import json, sys; sys.path[:] = json.loads(sys.argv[2])['path']; from trader.plugin_probe import main; main()"


def _names(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class ProbeResult:
    """What importing one entry point showed."""

    name: str
    is_strategy: bool = False
    hooks: tuple[str, ...] = attrs.field(default=(), converter=_names)
    import_ms: float | None = None
    error: str | None = None


def import_timeout() -> float:
    """Seconds one plugin's import may take in the probe (``TRADER_PLUGIN_IMPORT_TIMEOUT``, default 30)."""
    raw = os.environ.get("TRADER_PLUGIN_IMPORT_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_IMPORT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise ConfigError(f"TRADER_PLUGIN_IMPORT_TIMEOUT must be a positive number of seconds, not {raw!r}")
    return value


# ---------------------------------------------------------------------------- parent side


def probe(
    specs: Sequence[PluginSpec],
    *,
    cache: Path | None = None,
    refresh: bool = False,
    retry_errors: Collection[str] = (),
) -> dict[str, ProbeResult]:
    """The probe's result for each of ``specs`` (names must be unique), from ``cache`` where it is current.

    ``refresh`` ignores the cache (``trader plugins``); ``retry_errors`` names plugins whose cached
    error is not trusted (a strategy a command is about to run). Fresh results are written back.
    """
    keys = {spec.name: _cache_key(spec) for spec in specs}
    cached = {} if cache is None else _read_cache(cache)
    results: dict[str, ProbeResult] = {}
    todo = []
    for spec in specs:
        hit = None if refresh else cached.get(keys[spec.name])
        if hit is not None and not (hit.error and spec.name in retry_errors):
            results[spec.name] = hit
        else:
            todo.append(spec)
    if todo:
        results.update(_run(todo, import_timeout()))
        if cache is not None:
            _write_cache(cache, {keys[name]: result for name, result in results.items()})
    return results


def _run(specs: Sequence[PluginSpec], timeout: float) -> dict[str, ProbeResult]:
    """Probe ``specs`` in as many processes as it takes: each one that dies is replaced."""
    results: dict[str, ProbeResult] = {}
    remaining = list(specs)
    while remaining:
        done, failure = _probe_once(remaining, timeout)
        results.update((r.name, r) for r in done)
        remaining = remaining[len(done):]
        if failure is not None:
            culprit = remaining.pop(0)
            results[culprit.name] = ProbeResult(culprit.name, error=failure)
    return results


def _probe_once(specs: Sequence[PluginSpec], timeout: float) -> tuple[list[ProbeResult], str | None]:
    """One probe process: the results it delivered, and why it stopped early (``None`` if it did not)."""
    from trader.childenv import strategy_environment

    request = json.dumps({"path": sys.path, "plugins": [[s.name, s.value] for s in specs]})
    read_fd, write_fd = os.pipe()
    with tempfile.TemporaryFile() as stderr:
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-c", _BOOT, str(write_fd), request],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, pass_fds=(write_fd,),
                env=strategy_environment(), start_new_session=True,
            )
        except OSError as exc:
            os.close(read_fd)
            raise PluginError(f"cannot start the plugin probe with {sys.executable}: {exc.strerror}") from None
        finally:
            os.close(write_fd)
        failure: str | None = "not started"
        try:
            done, failure = _collect(proc, read_fd, specs, timeout)
        finally:
            os.close(read_fd)
            _stop(proc, patient=failure is None)
        if failure == "not started":
            stderr.seek(0)
            lines = [line.strip() for line in stderr.read().decode("utf-8", "replace").splitlines() if line.strip()]
            raise PluginError(f"the plugin probe did not start ({lines[-1] if lines else f'exit code {proc.returncode}'})")
    return done, failure


def _collect(proc: subprocess.Popen, fd: int, specs: Sequence[PluginSpec], timeout: float) -> tuple[list[ProbeResult], str | None]:
    done: list[ProbeResult] = []
    buffer = b""
    ready = False
    deadline = time.monotonic() + max(timeout, 30.0)  # the probe's own start-up is not a plugin's fault
    while len(done) < len(specs):
        wait = deadline - time.monotonic()
        readable = select.select([fd], [], [], wait)[0] if wait > 0 else []
        if not readable:
            return done, (f"import did not finish within {timeout:g} s (TRADER_PLUGIN_IMPORT_TIMEOUT)" if ready
                          else "not started")
        chunk = os.read(fd, 65536)
        if not chunk:  # end of file: the process is gone
            if not ready:
                proc.wait()
                return done, "not started"
            return done, _ended(proc)
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            message = _parse(line)
            if message is None:
                continue
            if message.get("ready") is True and not ready:
                ready = True
            elif ready and len(done) < len(specs) and message.get("name") == specs[len(done)].name:
                done.append(_result(specs[len(done)].name, message))
            else:
                continue
            deadline = time.monotonic() + timeout
    return done, None


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def _result(name: str, message: dict[str, Any]) -> ProbeResult:
    hooks = message.get("hooks") or ()
    import_ms = message.get("import_ms")
    error = message.get("error")
    return ProbeResult(
        name,
        is_strategy=message.get("is_strategy") is True,
        hooks=tuple(str(h) for h in hooks) if isinstance(hooks, list) else (),
        import_ms=float(import_ms) if isinstance(import_ms, (int, float)) else None,
        error=one_line(str(error)) if error is not None else None,
    )


def _ended(proc: subprocess.Popen) -> str:
    try:
        code = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # it closed the pipe but lives on
        return "import closed the probe's pipe"
    if code < 0:
        try:
            how = signal.Signals(-code).name
        except ValueError:
            how = f"signal {-code}"
        return f"import ended the process (killed by {how})"
    return f"import ended the process (exit code {code})"


def _stop(proc: subprocess.Popen, *, patient: bool) -> None:
    """Reap the probe; one that is still there (``patient``: after 2 s) is killed with what it started."""
    if patient and proc.poll() is None:
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        proc.wait()


# ---------------------------------------------------------------------------- cache


def _module_stamp(value: str) -> list[int] | None:
    """mtime and size of the entry point's top-level module file, found without importing anything."""
    import importlib.util

    top = value.split(":")[0].strip().split(".")[0]
    try:
        spec = importlib.util.find_spec(top)
        origin = spec.origin if spec is not None else None
        if origin and os.path.isfile(origin):
            stat = os.stat(origin)
            return [stat.st_mtime_ns, stat.st_size]
    except Exception:  # a finder that breaks on a name: no stamp, so no cached result reused
        return None
    return None


def _cache_key(spec: PluginSpec) -> str:
    from trader import __version__

    return json.dumps([spec.name, spec.value, spec.distribution, spec.version, sys.executable, __version__,
                       _module_stamp(spec.value)])


def _read_cache(path: Path) -> dict[str, ProbeResult]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != _CACHE_FORMAT:
            return {}
        return {key: ProbeResult(**entry) for key, entry in data["entries"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}  # a missing or unreadable cache only costs a probe


def _write_cache(path: Path, entries: dict[str, ProbeResult]) -> None:
    data = {"format": _CACHE_FORMAT, "entries": {key: attrs.asdict(r) for key, r in entries.items()}}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: the next command probes again


# ---------------------------------------------------------------------------- child side


def main(argv: Sequence[str] | None = None) -> None:
    """The probe process: ``python -I -c _BOOT FD REQUEST_JSON`` (``_BOOT`` has set ``sys.path`` already)."""
    args = list(sys.argv[1:] if argv is None else argv)
    out = os.fdopen(int(args[0]), "w", encoding="utf-8")
    request = json.loads(args[1])
    # Bound before any plugin runs, so a plugin that patches json or time cannot garble the report.
    dumps, clock, write, flush = json.dumps, time.perf_counter, out.write, out.flush
    from importlib.metadata import EntryPoint

    import trader  # noqa: F401  (the core's own import is not charged to the first plugin)
    from trader.entrypoints import ENTRY_POINT_GROUP, exception_line, import_failure, inspect_hooks

    write(dumps({"ready": True}) + "\n")
    flush()
    for name, value in request["plugins"]:
        report: dict[str, Any] = {"name": name}
        start = clock()
        try:
            plugin = EntryPoint(name, value, ENTRY_POINT_GROUP).load()
        except BaseException as exc:  # noqa: BLE001  SystemExit, KeyboardInterrupt: this plugin's error
            report.update(import_ms=(clock() - start) * 1000, error=import_failure(exc))
        else:
            report["import_ms"] = (clock() - start) * 1000
            try:
                hooks = inspect_hooks(plugin, name)
                report.update(hooks=list(hooks), is_strategy="trader_strategy_info" in hooks)
            except PluginError as exc:
                report["error"] = str(exc)
            except BaseException as exc:  # noqa: BLE001
                report["error"] = f"registration raised {exception_line(exc)}"
        write(dumps(report) + "\n")
        flush()
    os._exit(0)  # no atexit handler or thread of a plugin holds the probe open
