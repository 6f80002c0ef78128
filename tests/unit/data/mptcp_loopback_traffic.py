"""Traffic generator used to record mptcp_loopback_*.pcap (loopback only).

Run as: python mptcp_loopback_traffic.py 47123   (while tcpdump -i lo is capturing)
Three MPTCP connections: IPv4 with graceful close (DATA_FIN), IPv6 with graceful
close, IPv4 with SO_LINGER {1,0} (abortive close -> MP_FASTCLOSE + MP_TCPRST).
Only import/style formatting differs from the copy that was actually run.
"""

import socket
import struct
import sys
import threading
import time

IPPROTO_MPTCP = 262
PORT = int(sys.argv[1])
PAYLOAD = b"knit-mptcp-" * 400  # ~4.4 KB, forces a few DSS mappings


def server(family: int, addr: str, ready: threading.Event, linger0: bool) -> None:
    s = socket.socket(family, socket.SOCK_STREAM, IPPROTO_MPTCP)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, PORT))
    s.listen(1)
    ready.set()
    c, _ = s.accept()
    got = b""
    while len(got) < len(PAYLOAD):
        chunk = c.recv(65536)
        if not chunk:
            break
        got += chunk
    assert got == PAYLOAD, len(got)
    c.sendall(b"ok")
    if linger0:
        time.sleep(0.3)
    else:
        c.recv(1)  # wait for client FIN (DATA_FIN)
    c.close()
    s.close()


def run(family: int, addr: str, linger0: bool = False) -> None:
    ready = threading.Event()
    t = threading.Thread(target=server, args=(family, addr, ready, linger0))
    t.start()
    ready.wait()
    c = socket.socket(family, socket.SOCK_STREAM, IPPROTO_MPTCP)
    c.connect((addr, PORT))
    c.sendall(PAYLOAD)
    assert c.recv(2) == b"ok"
    if linger0:
        # SO_LINGER {1,0}: abortive close -> MP_FASTCLOSE + RST
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    t.join()
    time.sleep(0.5)


if __name__ == "__main__":
    run(socket.AF_INET, "127.0.0.1")
    run(socket.AF_INET6, "::1")
    run(socket.AF_INET, "127.0.0.1", linger0=True)
    print("done")
