"""Users of the shared tracking server (scripts/tracking_server.sh), through MLflow's own
auth client. Run as the admin (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, or
~/.mlflow/credentials):

    python scripts/tracking_users.py --uri http://HOST:5000 add alice            # password asked
    python scripts/tracking_users.py --uri http://HOST:5000 grant alice EDIT     # on slide-bench
    python scripts/tracking_users.py --uri http://HOST:5000 grant bob READ

A new user reads every experiment (the server's default_permission is READ) and writes only
where granted: EDIT lets a user's sweeps log runs into the experiment, MANAGE also lets them
grant. The new user's password comes from NEW_USER_PASSWORD or a prompt, never the command line.
"""
from __future__ import annotations

import argparse
import getpass
import os
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file, from anywhere

warnings.filterwarnings("ignore", category=DeprecationWarning)  # starlette's, at import of the auth client
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.server import get_app_client  # noqa: E402

from harness.tracking import ensure_store  # noqa: E402

PERMISSIONS = ("READ", "EDIT", "MANAGE", "NO_PERMISSIONS")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uri", default=os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"))
    parser.add_argument("--experiment", default="slide-bench", help="the harness's MLflow experiment")
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="create a user")
    add.add_argument("username")
    grant = sub.add_parser("grant", help="give a user a permission on the experiment")
    grant.add_argument("username")
    grant.add_argument("permission", choices=PERMISSIONS)
    args = parser.parse_args(argv)

    auth = get_app_client("basic-auth", tracking_uri=args.uri)
    try:
        if args.command == "add":
            password = os.environ.get("NEW_USER_PASSWORD") or getpass.getpass(f"password for {args.username}: ")
            auth.create_user(args.username, password)
            print(f"user {args.username} created (reads every experiment; writes where granted)")
        else:
            exp_id = ensure_store(args.uri, args.experiment)  # made as the sweeps make it, if none has yet
            try:
                auth.grant_user_permission(args.username, "experiment", exp_id, args.permission)
            except MlflowException as error:  # a grant exists: replace it
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                auth.revoke_user_permission(args.username, "experiment", exp_id)
                auth.grant_user_permission(args.username, "experiment", exp_id, args.permission)
            print(f"{args.username}: {args.permission} on experiment {args.experiment} ({exp_id})")
    except MlflowException as error:
        print(f"tracking_users: {error.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
