#!/usr/bin/env bash
# Captures real client requests into golden/*.bin (how the committed files were made; re-run to refresh).
# A tiny UDP sink records the first datagram each client sends; nothing answers, nothing touches the clock.
# chronyd runs on loopback with -Q; ntpdig and ntpq only speak to port 123, so they run in a network
# namespace created (and removed) here.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$here/golden
peers=${APPLIANCE_PEERS_DIR:-$here/../../.peers}
W=$(mktemp -d); chmod 755 "$W"
ns=golden$$
cleanup() { ip netns del "$ns" 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT

cat > "$W/sink.py" <<'PY'
import socket, sys
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((host, port)); s.settimeout(20)
data, _ = s.recvfrom(2048)
open(path, 'wb').write(data)
PY
port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

capture_chrony() { # name, extra server options
  python3 "$W/sink.py" 127.0.0.1 "$port" "$out/$1.bin" & local pid=$!
  sleep 0.3
  timeout 8 chronyd -Q -t 3 "server 127.0.0.1 port $port $2" "pidfile $W/q.pid" "cmdport 0" >/dev/null 2>&1 || true
  wait "$pid"
}
capture_chrony chronyd-v4 "iburst"
capture_chrony chronyd-v3 "iburst version 3"
capture_chrony chronyd-xleave "iburst xleave"

ip netns add "$ns"; ip -n "$ns" link set lo up
ip netns exec "$ns" python3 "$W/sink.py" 127.0.0.1 123 "$out/ntpdig.bin" & pid=$!
sleep 0.3; ip netns exec "$ns" timeout 5 ntpdig -t 1 127.0.0.1 >/dev/null 2>&1 || true; wait "$pid"
ip netns exec "$ns" python3 "$W/sink.py" 127.0.0.1 123 "$out/ntpq-mode6.bin" & pid=$!
sleep 0.3; ip netns exec "$ns" timeout 5 "$peers/ntpsec-root/usr/bin/ntpq" -n -c "rv 0" 127.0.0.1 >/dev/null 2>&1 || true; wait "$pid"
ls -l "$out"
