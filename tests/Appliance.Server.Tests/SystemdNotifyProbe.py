# Measures sd_notify from a real `appliance serve`: READY time, WATCHDOG=1 cadence, STOPPING after SIGTERM, the journald log lines.
# usage: python3 tests/Appliance.Server.Tests/SystemdNotifyProbe.py PATH/appliance.dll WATCHDOG_USEC SECONDS
import socket, subprocess, os, time, tempfile, sys, signal
d = tempfile.mkdtemp(); path = os.path.join(d, "notify.sock")
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(path); s.settimeout(0.2)
cfg = os.path.join(d, "a.yaml")
open(cfg, "w").write('ntp: { listen: ["127.0.0.1:0"], workers: 2 }\nclock: { mode: software, local: { stratum: 10 } }\nmetrics: { listen: off }\n')
env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM")}
env.update(NOTIFY_SOCKET=path, WATCHDOG_USEC=sys.argv[2], JOURNAL_STREAM="8:1")
t0 = time.monotonic()
p = subprocess.Popen(["dotnet", sys.argv[1], "serve", "--config", cfg], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
msgs = []
end = t0 + float(sys.argv[3]); termed = None
while True:
    now = time.monotonic()
    if termed is None and now > end:
        p.send_signal(signal.SIGTERM); termed = now
    if termed is not None and p.poll() is not None and now - termed > 0.5: break
    try:
        m = s.recv(4096).decode(); msgs.append((time.monotonic() - t0, m))
    except socket.timeout: pass
out = p.stdout.read().decode()
for t, m in msgs: print(f"{t:7.3f} {m!r}")
pings = [t for t, m in msgs if "WATCHDOG=1" in m.split("\n")]
gaps = [b - a for a, b in zip(pings, pings[1:])]
print("exit", p.returncode, "pings", len(pings), "gap min/median/max %.3f/%.3f/%.3f" % (min(gaps), sorted(gaps)[len(gaps)//2], max(gaps)) if gaps else "")
print("log lines:"); print(out)
