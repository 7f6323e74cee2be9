"""Admin commands behind ``run.py``: create a user, create an API token, import contacts.

They open the same runtime as the server (without a PBX link), so they apply the same
validation and leave the same audit entries as the admin pages.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from crm.csv_io import ImportFileError, import_contacts
from crm.errors import InvalidInput, NotFound

from .runtime import open_runtime

ACTOR = "cli"


async def _create_user(settings: dict[str, Any], args: Any) -> int:
    password = os.environ.get("CRM_PASSWORD") or getpass.getpass(f"password for {args.username}: ")
    rt = await open_runtime(settings, with_link=False)
    try:
        team_name = (getattr(args, "team", None) or "").strip()
        team = None
        if team_name:  # first, so a bad team name creates no user
            found = [
                t for t in await rt.service.list_teams() if t.name.lower() == team_name.lower()
            ]
            team = found[0] if found else await rt.service.create_team(team_name, ACTOR)
        user = await rt.service.create_user(
            args.username, args.name or args.username, password, args.role,
            args.extension or (), actor=ACTOR,
        )  # fmt: skip
        if team is not None and user.id is not None and team.id is not None:
            user = await rt.service.set_team(user.id, team.id, ACTOR)
    finally:
        await rt.close()
    in_team = f" in team {team.name}" if team is not None else ""
    print(f"user {user.username} ({user.role}) created{in_team}")
    return 0


async def _create_token(settings: dict[str, Any], args: Any) -> int:
    rt = await open_runtime(settings, with_link=False)
    try:
        user = await rt.store.get_user_by_username(args.username)
        if user is None or user.id is None:
            raise NotFound(f"no user {args.username!r}")
        days = getattr(args, "expires_days", None)
        token = await rt.service.create_api_token(
            user.id, args.name, ACTOR,
            expires_at=rt.service.clock() + days * 86400 if days else None,
            scope="read" if getattr(args, "read_only", False) else "full",
        )  # fmt: skip
    finally:
        await rt.close()
    print(token)
    return 0


async def _import(settings: dict[str, Any], args: Any) -> int:
    data = Path(args.file).read_bytes()
    rt = await open_runtime(settings, with_link=False)
    try:
        report = await import_contacts(rt.service, data, ACTOR)
    finally:
        await rt.close()
    for problem in report.rejected:
        print(f"line {problem.line}: {problem.reason}", file=sys.stderr)
    if not report.applied:
        print(f"nothing imported: {len(report.rejected)} of {report.rows} rows refused",
              file=sys.stderr)  # fmt: skip
        return 1
    print(f"imported {report.rows} rows: {report.created} new, {report.merged} merged")
    return 0


COMMANDS = {"create-user": _create_user, "create-token": _create_token,
            "import-contacts": _import}  # fmt: skip


def run_command(settings: dict[str, Any], args: Any) -> int:
    try:
        return asyncio.run(COMMANDS[args.command](settings, args))
    except (InvalidInput, NotFound, ImportFileError, OSError) as exc:
        print(f"run.py {args.command}: {exc}", file=sys.stderr)
        return 2
