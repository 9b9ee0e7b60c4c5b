"""``trader serve``: the dashboard and JSON API (see ``docs/serve.md``)."""

from __future__ import annotations

import contextlib
import signal

import click

from trader.cli.main import AppContext, pass_app

EXTRA_HINT = "trader serve needs the serve extra: pip install 'trader-core[serve]'"


def _server_class():
    import uvicorn

    class QuietServer(uvicorn.Server):
        """Ctrl-C and SIGTERM stop the server and return (uvicorn would raise them again: a traceback, exit 130)."""

        @contextlib.contextmanager
        def capture_signals(self):
            def stop(signum, frame):
                self.should_exit = True

            before = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in before.items():
                    signal.signal(sig, handler)

    return QuietServer


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback needs a strong TRADER_SERVE_TOKEN.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free port).")
@click.option("--read-only", is_flag=True, help="No halt or resume: the dashboard and API only read.")
@click.option("--refresh", "refresh_s", default=2.0, show_default=True, type=click.FloatRange(0.2, 3600),
              help="Seconds between the pages' live updates.")
@pass_app
def serve(app: AppContext, host: str, port: int, read_only: bool, refresh_s: float) -> None:
    """Serve a dashboard and a JSON API over every strategy under the home.

    Reads the state files without writing them, while `trader run` trades. Halting and
    resuming from the page or the API need the operator token: TRADER_SERVE_TOKEN, or one
    generated now and printed once. Ctrl-C stops the server.
    """
    import os
    import socket

    from trader.errors import ConfigError, TraderError

    try:
        import uvicorn

        from trader.serve.app import ServeContext, create_app
    except ModuleNotFoundError as exc:
        if exc.name not in ("starlette", "uvicorn"):
            raise
        raise TraderError(EXTRA_HINT) from None
    from trader.serve.auth import check_bind, operator_token
    from trader.serve.reader import StateReader

    token = operator_token(os.environ)
    check_bind(host, token)
    context = ServeContext(StateReader(app.home, app.config.models_dir), token, app.config, read_only, refresh_s)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound = sock.getsockname()[1]
    shown = f"[{host.strip('[]')}]" if family == socket.AF_INET6 else host
    url = f"http://{shown}:{bound}/"
    names = context.reader.names()
    click.echo(f"trader serve: {url} ({len(names)} strateg{'y' if len(names) == 1 else 'ies'} under {app.home})", err=False)
    if read_only:
        click.echo("read-only: halting and resuming are off")
    elif token.generated:
        click.echo(f"operator token (for halt and resume; set TRADER_SERVE_TOKEN to choose one): {token.value}")
        click.echo(f"open with the token filled in: {url}#token={token.value}")
    else:
        click.echo("operator token: from TRADER_SERVE_TOKEN")
    config = uvicorn.Config(create_app(context, host), log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=2)
    server = _server_class()(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    click.echo("trader serve: stopped")
