"""Where each server setting comes from: a `serve` flag, else an environment
variable, else the config file, else ServerConfig's default.

The table is the `serve` parser itself: every flag whose dest is a
ServerConfig field is a setting named by its flag (`--tls-cert` is
`tls-cert`), read from $TRIALPLANE_TLS_CERT and from the file's `tls-cert` or
`tls_cert` key (older flag names and the field's own name are accepted as
keys too). cli.py builds most flags from ServerConfig's `setting(...)` fields,
so one field gives all four; a flag added to the parser by hand works the same.

The config file (`--config PATH` or $TRIALPLANE_CONFIG) is TOML (.toml) or
YAML (.yaml, .yml, .json): one flat table of settings. Relative paths in it are
relative to the working directory, as they are on the command line. A key that
names no setting, or a value of the wrong kind or outside its range, is a
ConfigError naming the key and where it came from.

`problems(config)` is what --check-config and the start of `serve` check
without touching the database or a port: the TLS files, the database address
and the rule that a non-loopback address needs TLS and auth (or --insecure).
"""

from __future__ import annotations

import argparse
import difflib
import ipaddress
import os
import re
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .config import ConfigError, ServerConfig

ENV_PREFIX = "TRIALPLANE_"
CONFIG_ENV = "TRIALPLANE_CONFIG"
DEFAULT = "default"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
# Settings whose values are never printed, when their field does not say.
_SECRET_NAME = re.compile(r"token|secret|password|passwd|credential", re.IGNORECASE)
_PATH_NAME = re.compile(r"(file|path|dir)$")


@dataclass(frozen=True)
class Option:
    """One setting: a ServerConfig field and the flag that sets it."""

    dest: str
    name: str                    # the flag without dashes: "db", "no-auth"
    names: tuple[str, ...]       # every flag name without dashes
    kind: type                   # bool, int, float or str
    default: Any
    negate: bool = False         # a store_false flag: its "true" turns the field off
    optional: bool = False       # the field may be None (no value)
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    secret: bool = False

    @property
    def flag(self) -> str:
        return f"--{self.name}"

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper().replace("-", "_")

    def flag_keys(self) -> set[str]:
        """The config-file keys that are its flag names, with dashes or underscores."""
        return {n for name in self.names for n in (name, name.replace("-", "_"))}

    def field_keys(self) -> set[str]:
        """The field's own name as a key (db_path, auth), when it is not a flag's."""
        return {self.dest, self.dest.replace("_", "-")} - self.flag_keys()

    def shown(self, value: Any) -> Any:
        """The value as the flag would say it (no-auth is the opposite of auth)."""
        return (not value) if self.negate else value


@dataclass
class Resolved:
    config: ServerConfig
    options: list[Option]
    # dest -> "--port", "$TRIALPLANE_PORT", the config file's path, or "default"
    sources: dict[str, str]
    config_file: str | None = None
    config_file_source: str = DEFAULT


def field_kinds() -> dict[str, tuple[type, bool]]:
    """Each ServerConfig field's value type and whether it may be None."""
    kinds = {}
    for f in fields(ServerConfig):
        annotation = str(f.type).replace(" ", "")
        optional = "None" in annotation.split("|")
        base = annotation.replace("|None", "").replace("None|", "")
        kinds[f.name] = ({"bool": bool, "int": int, "float": float}.get(base, str), optional)
    return kinds


def options(parser: argparse.ArgumentParser) -> list[Option]:
    """The settings of the `serve` parser, in its order."""
    metadata = {f.name: f.metadata for f in fields(ServerConfig)}
    defaults = ServerConfig()
    kinds = field_kinds()
    found = []
    for action in parser._actions:
        if action.dest not in metadata or not action.option_strings:
            continue
        names = tuple(s[2:] for s in action.option_strings if s.startswith("--"))
        meta = metadata[action.dest]
        kind, optional = kinds[action.dest]
        negate = isinstance(action, argparse._StoreConstAction) and action.const is False
        choices = meta.get("choices") or (tuple(action.choices) if action.choices else None)
        secret = meta.get("secret") or (bool(_SECRET_NAME.search(action.dest)) and not _PATH_NAME.search(action.dest))
        found.append(Option(
            action.dest, names[0], names, kind, getattr(defaults, action.dest), negate, optional,
            choices, meta.get("minimum"), meta.get("maximum"), bool(secret),
        ))
    return found


def describe_default(option: Option) -> str:
    """What --help adds to a setting's help: its default and its variable."""
    if option.kind is bool:
        return f"(${option.env}=1)"
    if option.default is None:
        return f"(${option.env})"
    return f"(default: {option.default}; ${option.env})"


# --- values ---------------------------------------------------------------------------------------


def _convert(option: Option, raw: Any, where: str, as_field: bool = False) -> Any:
    """raw (a string from the environment, or what the file parser made of
    the value) as the setting's type; ConfigError naming where it came from.
    as_field: a bool is the field's value, not its flag's."""
    if raw is None:
        if option.optional:
            return None
        raise ConfigError(f"{where}: needs a value")
    kind = option.kind
    value: Any
    if isinstance(raw, str):
        text = raw.strip()
        try:
            if kind is bool:
                if text.lower() not in _TRUE | _FALSE:
                    raise ValueError
                value = text.lower() in _TRUE
            elif kind is int:
                value = int(text)
            elif kind is float:
                value = float(text)
            else:
                value = raw
        except ValueError:
            words = {bool: "true or false", int: "a whole number", float: "a number"}[kind]
            raise ConfigError(f"{where}: {raw!r} is not {words}") from None
    elif kind is bool and isinstance(raw, bool):
        value = raw
    elif kind is int and isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif kind is float and isinstance(raw, (int, float)) and not isinstance(raw, bool):
        value = float(raw)
    else:
        words = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}[kind]
        raise ConfigError(f"{where}: {raw!r} is not {words}")
    if kind is bool and option.negate and not as_field:
        value = not value
    return value


def check_value(option: Option, value: Any, where: str) -> None:
    """Choices and range, for values from every source (argparse checks
    only the choices of flags)."""
    if value is None or option.kind is bool:
        return
    if option.choices is not None and value not in option.choices:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(option.choices)}")
    if option.minimum is not None and value < option.minimum:
        raise ConfigError(f"{where}: {value:g} is below the least allowed, {option.minimum:g}")
    if option.maximum is not None and value > option.maximum:
        raise ConfigError(f"{where}: {value:g} is above the most allowed, {option.maximum:g}")


# --- the config file ------------------------------------------------------------------------------


def read_file(path: str) -> dict[str, Any]:
    """The file's table of settings, by key; ConfigError when it cannot be read or parsed."""
    suffix = Path(path).suffix.lower()
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror or exc}") from None
    if suffix == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib
        else:
            import tomli as tomllib
        try:
            table = tomllib.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    elif suffix in (".yaml", ".yml", ".json"):
        import yaml

        try:
            table = yaml.safe_load(data) or {}
        except yaml.YAMLError as exc:
            problem = str(exc).replace("\n", " ")
            raise ConfigError(f"config file {path} is not valid YAML: {problem}") from None
    else:
        raise ConfigError(f"config file {path}: name it .toml, .yaml or .yml to say how it is written")
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: expected a table of settings, found {type(table).__name__}")
    return table


def _from_file(path: str, table: Mapping[str, Any], opts: list[Option]) -> dict[str, tuple[Any, str]]:
    by_key = {key: o for o in opts for key in o.flag_keys() | o.field_keys()}
    found: dict[str, tuple[Any, str]] = {}
    for key, raw in table.items():
        option = by_key.get(str(key))
        if option is None:
            close = difflib.get_close_matches(str(key), [o.name for o in opts], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; the keys are the serve flags: {', '.join(o.name for o in opts)}"
            raise ConfigError(f"config file {path}: unknown key {key!r}{hint}")
        if option.dest in found:
            raise ConfigError(f"config file {path}: {key!r} sets {option.name} a second time")
        where = f"config file {path}: {key}"
        value = _convert(option, raw, where, as_field=str(key) in option.field_keys())
        check_value(option, value, where)
        found[option.dest] = (value, path)
    return found


# --- resolution -----------------------------------------------------------------------------------


def resolve(parser: argparse.ArgumentParser, args: argparse.Namespace,
            environ: Mapping[str, str] = os.environ) -> Resolved:
    """The ServerConfig of flags > environment > file > defaults, and where
    each value came from. `args` is the namespace parsed with the serve
    parser, whose settings are left out of it unless given."""
    opts = options(parser)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    config_file = getattr(args, "config_file", None)
    file_source = "--config" if config_file else DEFAULT
    if not config_file and environ.get(CONFIG_ENV):
        config_file, file_source = environ[CONFIG_ENV], f"${CONFIG_ENV}"
    from_file = _from_file(config_file, read_file(config_file), opts) if config_file else {}
    for option in opts:
        if hasattr(args, option.dest):
            value, source = getattr(args, option.dest), option.flag
            check_value(option, value, source)
        elif environ.get(option.env, "") != "":
            source = f"${option.env}"
            value = _convert(option, environ[option.env], source)
            check_value(option, value, source)
        elif option.dest in from_file:
            value, source = from_file[option.dest]
        else:
            continue
        values[option.dest], sources[option.dest] = value, source
    return Resolved(ServerConfig(**values), opts, sources, config_file, file_source)


# --- checks ---------------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """Whether host names only loopback addresses (127.0.0.0/8, ::1, localhost).

    A name other than localhost counts when every address it resolves to is
    loopback; one that does not resolve does not."""
    name = host.strip("[]")
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        pass
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)}
    except (socket.gaierror, UnicodeError):
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def exposure_refusal(config: ServerConfig) -> str | None:
    """Why the server may not listen where it is told to, or None.

    Anyone who can reach a non-loopback address can call every method, so
    that takes TLS and auth both, unless --insecure says it is meant."""
    if config.insecure or is_loopback(config.host):
        return None
    missing = [what for what, on in (("TLS", config.tls), ("auth", config.auth)) if not on]
    if not missing:
        return None
    fix = []
    if not config.tls:
        fix.append("give --tls-cert and --tls-key")
    if not config.auth:
        fix.append("drop --no-auth")
    return (f"refusing to listen on {config.host}, which is not a loopback address, without {' and '.join(missing)}: "
            f"{' and '.join(fix)}, or pass --insecure to serve it anyway")


def _database_problem(url: str) -> str | None:
    """An address that names no storage, found without opening anything."""
    from .storage.factory import (
        POSTGRES_SCHEMES,
        UnknownStorage,
        open_storage,
        sqlite_path,
    )

    if sqlite_path(url) or urlsplit(url).scheme in POSTGRES_SCHEMES:
        return None
    try:
        open_storage(url)  # refuses such an address before it creates anything
    except UnknownStorage as exc:
        return str(exc)
    return None


def problems(config: ServerConfig) -> list[str]:
    """Everything that would stop the server from starting, one line each,
    found without opening the database or binding the port."""
    from . import tls

    found = []
    try:
        tls.check(config)
    except ConfigError as exc:
        found.append(str(exc))
    refusal = exposure_refusal(config)
    if refusal:
        found.append(refusal)
    database = _database_problem(config.db_path)
    if database:
        found.append(database)
    return found


# --- the --check-config report --------------------------------------------------------------------


def redact(option: Option, value: Any) -> str:
    """How a value is printed: secrets as ***, a password inside a URL too."""
    if value is None:
        return "(none)"
    if option.secret:
        return "***"
    text = str(option.shown(value)).lower() if option.kind is bool else str(value)
    if "://" in text:
        parts = urlsplit(text)
        if parts.password:
            netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
            text = urlunsplit(parts._replace(netloc=netloc))
        text = re.sub(r"(password=)[^&\s]*", r"\1***", text, flags=re.IGNORECASE)
    return text


def report(resolved: Resolved) -> list[str]:
    """The effective settings as a table: name, value, where it came from."""
    rows = [("setting", "value", "from")]
    rows.append(("config", resolved.config_file or "(none)", resolved.config_file_source))
    for option in resolved.options:
        value = getattr(resolved.config, option.dest)
        rows.append((option.name, redact(option, value), resolved.sources.get(option.dest, DEFAULT)))
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    return [f"{r[0].ljust(widths[0])}  {r[1].ljust(widths[1])}  {r[2]}" for r in rows]
