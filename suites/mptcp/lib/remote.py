"""Guest side of an MPTCP transfer whose server runs in another VM than its client.

The server is a process (`python -m suites.mptcp.lib.remote --port P ...`, run with
vm.spawn in the server's netns): it prints "listening" once its socket listens, serves one
connection like traffic.transfer's server thread, then prints its result as one JSON line.
The client is traffic.client in the other VM; the host joins both with traffic.merge.
"""

from __future__ import annotations

import argparse
import json
import sys

from suites.mptcp.lib.traffic import Server


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m suites.mptcp.lib.remote")
    ap.add_argument("--port", type=int, default=10000)
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--reply", type=int, default=0)
    ap.add_argument("--tcp", action="store_true", help="a plain TCP listener")
    ap.add_argument("--limit", type=float, default=120.0)
    a = ap.parse_args(argv)
    # ns None: the process already runs in the server's netns (vm.spawn's ns).
    srv = Server(None, a.bind, a.port, not a.tcp, a.reply, None, a.limit)
    srv.start()
    srv.ready.wait(a.limit)
    if not srv.error:
        print("listening", flush=True)
    srv.join(a.limit)
    error = srv.error or ("server still running at its limit" if srv.is_alive() else None)
    print(json.dumps({"server": srv.result, "error": error}), flush=True)
    return 0 if error is None else 1


if __name__ == "__main__":
    sys.exit(main())
