"""`trialplane serve`: the server's own command, added to the `trialplane`
command by the clients' CLI. Heavy imports wait until the server runs, so
`trialplane --help` stays fast.

Its flags are ServerConfig's `setting(...)` fields (config.py); each is also
an environment variable and a config-file key (settings.py)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import fields

from .config import ConfigError, ServerConfig
from .domain.errors import Unavailable

EPILOG = """\
every setting is also an environment variable, TRIALPLANE_ and the flag's name
in capitals (TRIALPLANE_PORT, TRIALPLANE_TLS_CERT, TRIALPLANE_NO_AUTH=1), and a
key of the --config file (TOML or YAML: port = 50051, tls-cert = "server.pem").
A flag wins over the environment, the environment over the file, the file over
the default. --check-config prints what each setting is and where it came from.

A host that is not loopback is served only with TLS (--tls-cert, --tls-key) and
auth on, or with --insecure. Certificate files are re-read when they change,
without a restart; open connections keep the certificate they started with.
exit status: 0 stopped by SIGTERM or Ctrl-C (or the configuration is good),
1 the server could not start, 2 a setting is wrong."""


def _add_settings(p: argparse.ArgumentParser) -> None:
    """A flag for every ServerConfig field made with setting(...)."""
    for f in fields(ServerConfig):
        meta = f.metadata
        if "help" not in meta:
            continue
        names = [f"--{meta['flag'] or f.name.replace('_', '-')}", *(f"--{a}" for a in meta["aliases"])]
        kwargs: dict = {"dest": f.name, "help": meta["help"]}
        if isinstance(f.default, bool):
            kwargs["action"] = "store_false" if meta["negate"] else "store_true"
        else:
            kind = type(f.default) if f.default is not None else str
            kwargs["type"] = kind
            if meta["choices"]:
                kwargs["choices"] = list(meta["choices"])
            if meta["metavar"]:
                kwargs["metavar"] = meta["metavar"]
        p.add_argument(*names, **kwargs)


def _finish_settings(p: argparse.ArgumentParser) -> None:
    """Every setting flag, made here or added by hand, is left out of the
    namespace unless given (so the environment and the file can fill it),
    and its help says its default and its variable."""
    from .settings import describe_default, options

    by_dest = {o.dest: o for o in options(p)}
    for action in p._actions:
        option = by_dest.get(action.dest)
        if option is None or not action.option_strings:
            continue
        action.default = argparse.SUPPRESS
        action.help = f"{action.help} {describe_default(option)}"


def add_serve_command(sub) -> None:
    """The `serve` subcommand on the `trialplane` command's subparsers."""
    p = sub.add_parser(
        "serve",
        help="run the control-plane server",
        description="Run the trialplane gRPC server on an embedded SQLite database (or PostgreSQL).\n"
        "SIGTERM or Ctrl-C stops accepting calls, lets in-flight calls finish and closes the database.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_settings(p)
    p.add_argument("--config", dest="config_file", metavar="PATH",
                   help="a TOML (.toml) or YAML (.yaml, .yml) file of settings, keyed by flag name "
                        "(default: $TRIALPLANE_CONFIG)")
    p.add_argument("--check-config", action="store_true",
                   help="check the settings (TLS files included), print each with where it came from, exit 0 "
                        "when the server could start with them, 2 when not; opens no database and no port")
    _finish_settings(p)
    p.set_defaults(serve_parser=p)


def _fail(message: str) -> int:
    print(f"trialplane: {message}", file=sys.stderr)
    return 2


def run_serve(args) -> int:
    """Runs the server until SIGTERM or SIGINT; 1 when it cannot start, 2
    when a setting is wrong."""
    from . import settings

    try:
        resolved = settings.resolve(args.serve_parser, args)
    except ConfigError as exc:
        return _fail(str(exc))
    config = resolved.config
    found = settings.problems(config)
    if args.check_config:
        print("\n".join(settings.report(resolved)))
        for problem in found:
            _fail(problem)
        if found:
            return 2
        print(f"configuration ok: {_summary(config)}")
        return 0
    if found:
        for problem in found:
            _fail(problem)
        return 2
    from .logs import configure

    configure(config.log_level, config.log_format)
    # Imported here, not at the top: `trialplane --help` and the client
    # commands then start without loading the storage and numpy.
    from .app import serve
    from .storage.factory import UnknownStorage

    try:
        asyncio.run(serve(config))
    except (UnknownStorage, ConfigError) as exc:
        return _fail(str(exc))
    except (OSError, Unavailable) as exc:
        print(f"trialplane: {exc}", file=sys.stderr)
        return 1
    return 0


def _summary(config: ServerConfig) -> str:
    if config.tls:
        transport = "TLS with client certificates required" if config.tls_client_ca else "TLS"
    else:
        transport = "plaintext"
    auth = "auth on" if config.auth else "auth off"
    return f"{config.host}:{config.port}, {transport}, {auth}" + (", --insecure" if config.insecure else "")
