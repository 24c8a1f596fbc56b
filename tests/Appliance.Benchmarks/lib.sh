# Sourced by the bench scripts (bench.sh, floods.sh, memory.sh, ntske-attack.sh, soak.sh), from the
# repository's root: a private work directory W, the processes a script starts (add each to pids),
# all ended by their pid and W removed on exit, however the script ends; free ports on loopback; the
# test certificate and the appliance's nts-ke block. A script that must undo more on exit (a sysctl)
# adds a command to on_exit.
W=$(mktemp -d); chmod 755 "$W"
pids=()
on_exit=()
bench_cleanup() {
  # Only the jobs still running: a pid waited for already may have been reused by another process.
  local live=" $(jobs -p | tr '\n' ' ') "
  for p in "${pids[@]}"; do [[ $live == *" $p "* ]] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
  for c in "${on_exit[@]}"; do eval "$c" || true; done
}
trap bench_cleanup EXIT
# Interrupted (Ctrl-C, kill): exit through the EXIT trap, so the servers stop and the sysctls go back.
trap "exit 130" INT TERM

cpus=$(nproc)
# The server on CPU 1, its generators on CPU 0 (one CPU: both on 0).
server_cpu=$(( cpus > 1 ? 1 : 0 ))

free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
free_tcp_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A self-signed certificate for ntp.test and 127.0.0.1: $W/server.crt, its key $W/server.key (0600).
bench_certificate() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$W/server.key" -out "$W/server.crt" \
    -days 30 -subj "/CN=ntp.test" -addext "subjectAltName=DNS:ntp.test,IP:127.0.0.1" 2>/dev/null
  chmod 600 "$W/server.key"
}

# The appliance's nts-ke section on 127.0.0.1:PORT with that certificate and keys under $W; a second
# argument is one more line of it (e.g. "client-limit: { connections: 100000, interval: 1s }").
ntske_yaml() {
  printf 'nts-ke:\n  listen: ["127.0.0.1:%s"]\n  certificate: %s/server.crt\n  private-key: %s/server.key\n  keys: { storage: %s/keys/nts-keys.json }\n' \
    "$1" "$W" "$W" "$W"
  [ -z "${2:-}" ] || printf '  %s\n' "$2"
}

# put_section FILE DOC: FILE's "## Heading" section replaces DOC's section of that heading, or is added at its end.
put_section() {
  python3 - "$1" "$2" <<'PY'
import re, sys
section, path = open(sys.argv[1]).read().rstrip("\n") + "\n", sys.argv[2]
heading = section.split("\n", 1)[0]
doc = open(path).read()
pattern = re.escape(heading) + r"\n.*?(?=\n## |\Z)"
doc = re.sub(pattern, lambda _: section, doc, flags=re.S) if re.search(pattern, doc, flags=re.S) else doc.rstrip("\n") + "\n\n" + section
open(path, "w").write(doc)
PY
}

# chrony_conf NTP_PORT NTSKE_PORT: a chronyd serving NTP and NTS on 127.0.0.1 with the bench
# certificate, its state under $W/chrony (made for _chrony); the configuration on standard output.
chrony_conf() {
  mkdir -p "$W/chrony" && chown _chrony:_chrony "$W/chrony" && chmod 750 "$W/chrony"
  cat <<CONF
port $1
bindaddress 127.0.0.1
local stratum 1
allow 127.0.0.0/8
ntsport $2
ntsservercert $W/server.crt
ntsserverkey $W/server.key
ntsdumpdir $W/chrony
cmdport 0
bindcmdaddress $W/chrony/chronyd.sock
pidfile $W/chrony/chronyd.pid
CONF
}
