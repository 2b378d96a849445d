"""The ``.env`` file: read under the environment by every verb, written by ``python -m bot setup``.

The format read and written here is the common subset of systemd's ``EnvironmentFile=``, docker compose's
``env_file`` and a shell's ``set -a; . ./.env``: ``KEY=value`` lines, ``#`` comments, double quotes for values
with spaces. The private key is one line with ``\\n`` escapes, which ``bot/settings.py`` turns back into a PEM.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path

from bot.settings import SettingsError

ENV_KEYS = ("GITHUB_APP_ID", "GITHUB_WEBHOOK_SECRET", "GITHUB_PRIVATE_KEY")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPED_IN_QUOTES = '"\\$`'  # what a backslash escapes inside double quotes (systemd and POSIX shells agree)


class SetupError(Exception):
    """The set-up cannot go on; the message says what to do and never holds a secret."""


def _parse_value(raw: str, where: str) -> str:
    raw = raw.strip()
    if raw[:1] == "'":
        end = raw.find("'", 1)
        if end < 0:
            raise SettingsError(f"{where}: unterminated single quote")
        value, rest = raw[1:end], raw[end + 1:]
    elif raw[:1] == '"':
        out: list[str] = []
        i = 1
        while i < len(raw) and raw[i] != '"':
            if raw[i] == "\\" and i + 1 < len(raw):
                nxt = raw[i + 1]
                out.append(nxt if nxt in _ESCAPED_IN_QUOTES else "\\" + nxt)  # "\n" stays two characters
                i += 2
                continue
            out.append(raw[i])
            i += 1
        if i >= len(raw):
            raise SettingsError(f"{where}: unterminated double quote")
        value, rest = "".join(out), raw[i + 1:]
    else:
        return raw
    if rest.strip() and not rest.strip().startswith("#"):
        raise SettingsError(f"{where}: text after the closing quote")
    return value


def _assignments(text: str, path: Path) -> list[tuple[int, str, str]]:
    """(line index, key, value) of each assignment; a malformed line is named by number, never shown."""
    found = []
    for index, line in enumerate(text.splitlines()):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("export "):
            stripped = stripped[len("export "):].lstrip()
        key, eq, raw = stripped.partition("=")
        key = key.strip()
        if not eq or not _KEY.fullmatch(key):
            raise SettingsError(f"{path}:{index + 1}: not a KEY=value line")
        found.append((index, key, _parse_value(raw, f"{path}:{index + 1} ({key})")))
    return found


def load_dotenv(path: Path) -> dict[str, str]:
    """The variables a ``.env`` file sets ({} when there is none); merge it *under* the real environment."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise SettingsError(f"{path} cannot be read ({exc.strerror})") from None
    return {key: value for _, key, value in _assignments(text, path)}


def _env_line(key: str, value: str) -> str:
    """``KEY="value"``, refusing characters whose meaning differs between .env readers."""
    check = value.replace("\\n", "") if key == "GITHUB_PRIVATE_KEY" else value
    if any(c in check for c in '"\\$`\n\r'):
        raise SetupError(f"GitHub returned a {key} with characters a .env file cannot hold safely")
    return f'{key}="{value}"' if value and not value.isdigit() else f"{key}={value}"


def check_env(path: Path, *, force: bool) -> None:
    """Fail before anything is registered if the credentials could not be saved."""
    if not path.parent.is_dir():
        raise SetupError(f"{path.parent} is not a folder")
    taken = sorted(set(ENV_KEYS) & set(load_dotenv(path)))
    if taken and not force:
        raise SetupError(f"{path} already sets {', '.join(taken)}; pass --force to replace them")


def write_env(path: Path, values: Mapping[str, str], *, force: bool) -> None:
    """Set ``values`` in the file, keeping its other lines; atomic, and the file ends up mode 0600."""
    check_env(path, force=force)
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    new = {key: _env_line(key, value) for key, value in values.items()}
    for index, key, _ in reversed(_assignments("\n".join(lines), path)):
        if key in new:
            del lines[index]
    lines += new.values()
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask can only remove bits; this makes it exactly 0600
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

