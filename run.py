#!/usr/bin/env python3
"""The one entry point of the telephony CRM.

python run.py                 serve (web UI + the PBX link from the settings)
python run.py --demo          serve with the replay PBX and sample data (config/demo.toml)
python run.py --demo --port N the same on another port (also: serve --port N)
python run.py replay FILE     print the calls a capture contains, one JSON per line
python run.py migrate         apply database migrations
python run.py rebuild-figures recompute the managers' figures from the calls
python run.py create-user NAME --role rep --extension 101 [--team East]
                              (password from CRM_PASSWORD or a prompt)
python run.py create-token USERNAME NAME [--read-only] [--expires-days N]  (prints a token once)
python run.py import-contacts FILE.csv                      (all rows or none, with a report)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="run.py", description="Telephony CRM for Asterisk")
    ap.add_argument("--config", help="a TOML file with settings to override the defaults")
    ap.add_argument("--demo", action="store_true",
                    help="serve with the replay PBX and sample data (adds config/demo.toml)")
    # Also accepted before the command, so `run.py --demo --port N` works; own dest names,
    # because a subparser's defaults would overwrite the same dest.
    ap.add_argument("--port", type=int, dest="top_port", help="the web port (serve, --demo)")
    ap.add_argument("--host", dest="top_host", help="the address to listen on (serve, --demo)")
    sub = ap.add_subparsers(dest="command")
    rp = sub.add_parser(
        "replay", help="print the calls in a capture (raw AMI, JSON lines, JSON array)"
    )
    rp.add_argument("path")
    sub.add_parser("migrate", help="apply database migrations and exit")
    sub.add_parser("rebuild-figures",
                   help="recompute the missed-calls and report figures from the calls")
    cu = sub.add_parser("create-user", help="create a user (password: CRM_PASSWORD or a prompt)")
    cu.add_argument("username")
    cu.add_argument("--name", help="display name")
    cu.add_argument("--role", choices=("rep", "manager", "admin"), default="rep")
    cu.add_argument("--extension", action="append", help="an extension (repeat for several)")
    cu.add_argument("--team", help="the user's team, by name (made when it does not exist)")
    ct = sub.add_parser("create-token", help="create an API token for a user and print it")
    ct.add_argument("username")
    ct.add_argument("name", help="what the token is for")
    ct.add_argument("--read-only", action="store_true",
                    help="the token may only read (GET/HEAD), never change anything")
    ct.add_argument("--expires-days", type=float, metavar="N",
                    help="the token stops working N days from now (default: until revoked)")
    ic = sub.add_parser("import-contacts", help="import contacts from a CSV file")
    ic.add_argument("file")
    sv = sub.add_parser("serve", help="serve the web UI and run the PBX link (the default)")
    sv.add_argument("--port", type=int)
    sv.add_argument("--host")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from config.settings import SettingsError, load_settings, pbx_profile

    try:
        settings = load_settings(args.config, demo=args.demo)
    except SettingsError as exc:
        print(f"run.py: settings: {exc}", file=sys.stderr)
        return 2
    if args.command == "replay":
        from ami_bridge.replay import main as replay_main

        return replay_main(args.path, pbx_profile(settings))
    if args.command in ("create-user", "create-token", "import-contacts"):
        from web.commands import run_command

        return run_command(settings, args)
    if args.command == "migrate":
        from web.server import migrate

        return migrate(settings)
    if args.command == "rebuild-figures":
        from web.server import rebuild_figures

        return rebuild_figures(settings)
    from web.eventloop import install
    from web.server import serve

    install()  # uvloop for the web server, when installed
    port = getattr(args, "port", None) or args.top_port
    host = getattr(args, "host", None) or args.top_host
    if port:
        settings["server"]["port"] = port
    if host:
        settings["server"]["host"] = host
    return serve(settings, demo=args.demo)


if __name__ == "__main__":
    sys.exit(main())
