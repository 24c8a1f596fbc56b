#!/usr/bin/env bash
# The "NTS-KE under attack" section of `make bench` (issue #18): one appliance (the JIT build, pinned
# to CPU 1, NTS-KE with its default limits), its NTP answer rate measured idle and then under an
# NTS-KE attack, side by side in one run: 1,000 connections from 8 addresses that never finish an
# exchange, opened again whenever the server closes them (ntske-attack.py attack), and a flood of
# complete handshakes from one address (appliance-loadtest ntske, 8 in flight), both on CPU 0 beside
# the NTP generator, not niced: a niced attacker starved by the generator ran no attack. Meanwhile a
# new client from another address exchanges keys once a second (ntske-attack.py probe). Loopback
# only; every process is ended by its pid.
# Usage: ntske-attack.sh OUT [DOC]  (writes OUT/ntske-attack.md; with DOC, e.g. docs/benchmarks.md, puts the
# section in place there: after "## NTS-KE handshakes" the first time, where it was after that)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$1
doc=${2:-}
CONFIG=${CONFIG:-Release}
. tests/Appliance.Benchmarks/lib.sh
LT="dotnet loadtest/Appliance.LoadTest/bin/$CONFIG/net10.0/appliance-loadtest.dll"
ATTACK="python3 tests/Appliance.Benchmarks/ntske-attack.py"
# Fixed rates well below what one worker answers here, so the answer rate and delay show what the attack takes.
rates=${NTSKE_ATTACK_RATES:-"20000 50000"}
duration=10s
connections=1000; addresses=8; probes=25
# Long enough for every NTP run under attack (each 10 s plus its 1 s warm-up and start), after a 3 s ramp.
attack_seconds=$(( 3 + 13 * $(wc -w <<< "$rates") ))

# NTSKE_ATTACK_PIN=worker (the default, as bench.sh runs the appliance): the NTP worker pinned to CPU 1
# (ntp.cpu-affinity), the NTS-KE threads wherever the kernel puts them; =process: the whole process
# on CPU 1 (taskset), so NTS-KE and NTP share one core: the worst case.
pin=${NTSKE_ATTACK_PIN:-worker}
case "$pin" in worker) affinity="  cpu-affinity: [$server_cpu]"; launch=();; process) affinity=""; launch=(taskset -c "$server_cpu");;
  *) echo "ntske-attack.sh: NTSKE_ATTACK_PIN is worker or process, not '$pin'"; exit 2;; esac
p_ntp=$(free_port); p_ke=$(free_tcp_port); p_metrics=$(free_tcp_port)
bench_certificate
# NTS-KE limits are the defaults: 1,000 connections; per client 10 open and 20 new per 10 s; the
# handshake in 5 s, a read at least every 5 s, all over by 7 s from accept; requests up to 1,024 octets.
cat > "$W/appliance.yaml" <<YAML
ntp:
  listen: ["127.0.0.1:$p_ntp"]
  workers: 1
$affinity
  rate-limit: off
clock: { mode: software, local: { stratum: 1 } }
metrics: { listen: "127.0.0.1:$p_metrics" }
$(ntske_yaml "$p_ke")
YAML
"${launch[@]}" dotnet "server/Appliance.Server/bin/$CONFIG/net10.0/appliance.dll" serve --config "$W/appliance.yaml" > "$out/ntske-attack-appliance.log" 2>&1 & pid=$!; pids+=("$pid")
for _ in $(seq 1 150); do grep -q "serving NTS-KE" "$out/ntske-attack-appliance.log" && grep -q "serving NTP" "$out/ntske-attack-appliance.log" && break; sleep 0.2; done
grep -q "serving NTS-KE" "$out/ntske-attack-appliance.log" || { echo "ntske-attack.sh: the appliance did not start:"; cat "$out/ntske-attack-appliance.log"; exit 1; }
sleep 1
metrics() { curl -sf "127.0.0.1:$p_metrics/metrics"; }

ntp_run() { # PHASE RATE
  local cmd="$LT run 127.0.0.1:$p_ntp --rate $2 --duration $duration --cpu 0 --clients 16 --ports 1 --pid $pid --json $out/ntske-attack-$1-$2.json"
  echo "$cmd" > "$out/ntske-attack-$1-$2.cmd"
  $cmd > "$out/ntske-attack-$1-$2.md"
}

echo "== NTS-KE under attack: NTP idle"
for r in $rates; do ntp_run idle "$r"; done

echo "== NTS-KE under attack: NTP during $connections unfinished connections and a handshake flood"
metrics > "$out/ntske-attack-metrics-before.txt"
cmd_attack="$ATTACK attack --target 127.0.0.1:$p_ke --ca $W/server.crt --connections $connections --addresses $addresses --duration $attack_seconds"
cmd_flood="$LT ntske 127.0.0.1:$p_ke --name ntp.test --ca $W/server.crt --duration ${attack_seconds}s --concurrency 8"
cmd_probe="$ATTACK probe --target 127.0.0.1:$p_ke --ca $W/server.crt --source 127.0.0.200 --count $probes --interval 1"
printf '%s\n' "$cmd_attack" "$cmd_flood" "$cmd_probe" > "$out/ntske-attack-commands.txt"
taskset -c 0 $cmd_attack > "$out/ntske-attack-attacker.json" & pid_attack=$!; pids+=("$pid_attack")
taskset -c 0 $cmd_flood > "$out/ntske-attack-flood.md" 2> "$out/ntske-attack-flood.log" & pid_flood=$!; pids+=("$pid_flood")
# The open connections, twice a second, for the largest seen.
( while kill -0 "$pid_attack" 2>/dev/null; do metrics | awk '$1=="appliance_ntske_connections" {print $2}'; sleep 0.5; done ) > "$out/ntske-attack-open.txt" & pids+=("$!")
sleep 3
taskset -c 0 $cmd_probe > "$out/ntske-attack-probe.json" & pid_probe=$!; pids+=("$pid_probe")
for r in $rates; do ntp_run attack "$r"; done
wait "$pid_probe"
wait "$pid_attack"
wait "$pid_flood" || true # it counts every refused handshake as failed, and exits 1 for them
sleep 8 # the last connections end at their 7 s deadline
metrics > "$out/ntske-attack-metrics-after.txt"
kill "$pid"; wait "$pid" 2>/dev/null || true

python3 - "$out" "$rates" "$connections" "$addresses" "$pin" <<'PY'
import json, re, statistics, sys
out, rates, connections, addresses, pin = sys.argv[1], sys.argv[2].split(), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
layout = ("its NTP worker pinned to CPU 1 (`ntp.cpu-affinity`), the NTS-KE threads where the kernel puts them" if pin == "worker"
          else "the whole process on CPU 1 (`taskset -c 1`), NTS-KE and NTP sharing the core")
def series(name):
    counts = {}
    for line in open(f"{out}/ntske-attack-metrics-{name}.txt"):
        m = re.match(r'appliance_ntske_handshakes_total\{result="(\w+)",reason="(\w+)"\} (\S+)', line)
        if m:
            counts[(m[1], m[2])] = float(m[3])
    return counts
before, after = series("before"), series("after")
ended = {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0) > 0}
def step(phase, rate):
    return json.load(open(f"{out}/ntske-attack-{phase}-{rate}.json"))["Steps"][0]
probe = json.load(open(f"{out}/ntske-attack-probe.json"))
attacker = json.load(open(f"{out}/ntske-attack-attacker.json"))
opened = [float(x) for x in open(f"{out}/ntske-attack-open.txt").read().split()]
flood = [l for l in open(f"{out}/ntske-attack-flood.md") if l.startswith("| 127")]
cmds = open(f"{out}/ntske-attack-commands.txt").read().split("\n")
md = ["## NTS-KE under attack\n",
      f"One appliance (the JIT build, {layout}; `NTSKE_ATTACK_PIN={pin}`), one NTP worker, NTS-KE with its default limits: 1,000",
      "connections; per client 10 open and 20 new per 10 s; the handshake within 5 s, every exchange over by 7 s",
      "from accept; its NTP answers measured at fixed offered rates, idle and then under an NTS-KE attack, in one",
      f"run. The attack, on CPU 0 beside the NTP generator: {connections:,} connections from {addresses} addresses",
      "that never finish (a third silent, a third stopping half-way through a ClientHello, a third stopping after",
      "the TLS handshake), each opened again as soon as the server closes it, and a flood of complete key",
      "exchanges from 127.0.0.1 with 8 in flight. Meanwhile a new client from 127.0.0.200 exchanges keys once",
      "a second (a fresh TCP and TLS 1.3 connection each time, timed from connect to the answer's End of Message).",
      "Host: 2 vCPU Intel Xeon, Linux 6.18.44-fc-v657; loopback. Commands:\n",
      f"- slow connections: `{cmds[0]}`",
      f"- handshake flood: `{cmds[1]}`",
      f"- the new client: `{cmds[2]}`",
      f"- NTP: `{open(f'{out}/ntske-attack-idle-{rates[0]}.cmd').read().strip()}` (and `--rate` {', '.join(rates[1:])}), idle, then the same under attack\n",
      "| offered NTP/s | answers/s idle | under attack | ratio | loss % idle / attack | p99 delay µs idle | under attack | ratio | server CPU µs per answer idle / attack |",
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
for r in rates:
    i, a = step("idle", r), step("attack", r)
    def flag(s): return " (generator-limited)" if s.get("GeneratorLimited") else ""
    cpu = lambda s: f"{s['ServerCpuMicrosPerResponse']:.2f}" if s.get("ServerCpuMicrosPerResponse") is not None else "–"
    md.append(f"| {int(r):,} | {i['ValidRate']:.0f}{flag(i)} | {a['ValidRate']:.0f}{flag(a)} | {a['ValidRate'] / i['ValidRate']:.2f}× | "
              f"{i['LossPercent']:.2f} / {a['LossPercent']:.2f} | {i['DelayP99Micros']:.0f} | {a['DelayP99Micros']:.0f} | "
              f"{a['DelayP99Micros'] / i['DelayP99Micros']:.2f}× | {cpu(i)} / {cpu(a)} |")
t = sorted(probe["times_ms"])
md += ["",
       f"The new client under attack: {len(t)} of {len(t) + len(probe['failures'])} key exchanges completed"
       + (f" (failed: {'; '.join(probe['failures'])})" if probe["failures"] else "")
       + (f", median **{statistics.median(t):.1f} ms**, max **{t[-1]:.1f} ms** (p90 {t[int(0.9 * (len(t) - 1))]:.1f} ms)." if t else "."),
       f"NTS-KE connections open, sampled twice a second: at most {max(opened or [0]):.0f} (limit 1,000; {addresses} addresses × 10",
       "+ the flood's and the client's own). The flood: " + (flood[0].strip() if flood else "(no result)")
       + " (`| server | handshakes/s | ok | failed | p50 ms | p99 ms |`: failed are the refused).", "",
       "How the server ended the attack's connections (`appliance_ntske_handshakes_total`, the difference over the attack):", "",
       "| result | reason | connections |", "| --- | --- | --- |"]
for (result, reason), n in sorted(ended.items(), key=lambda kv: -kv[1]):
    md.append(f"| {result} | {reason} | {n:.0f} |")
k = attacker["kinds"]
md += ["",
       "The attacker's view: " + "; ".join(f"{name.replace('_', ' ')}: {v['opened']} opened, {v['held']} held"
                                           + (f" for {v['held_seconds'] / v['held']:.1f} s on average" if v['held'] else "")
                                           + f", {v['refused']} closed at once" for name, v in k.items())
       + f"; at most {attacker['max_open']} open at once (the client's count, refused ones included until closed).", ""]
open(f"{out}/ntske-attack.md", "w").write("\n".join(md) + "\n")
PY
cat "$out/ntske-attack.md"
if [ -n "$doc" ]; then
  python3 - "$out/ntske-attack.md" "$doc" <<'PY'
import re, sys
section, path = open(sys.argv[1]).read().rstrip("\n") + "\n", sys.argv[2]
doc = open(path).read()
old = re.search(r"\n## NTS-KE under attack\n.*?(?=\n## |\Z)", doc, flags=re.S)
if old:
    doc = doc[:old.start()] + "\n" + section + doc[old.end():]
else:
    after = re.search(r"\n## NTS-KE handshakes\n.*?(?=\n## |\Z)", doc, flags=re.S)
    at = after.end() if after else len(doc)
    doc = doc[:at].rstrip("\n") + "\n\n" + section + doc[at:]
open(path, "w").write(doc)
PY
fi
