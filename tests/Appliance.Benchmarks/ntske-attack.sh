#!/usr/bin/env bash
# The "NTS-KE under attack" section of `make bench` (issue #18): one appliance (the JIT build, one NTP
# worker, NTS-KE with its default limits), its NTP answer rate measured idle and then under an
# NTS-KE attack, side by side in one run, three times: the worker pinned to CPU 1 (as bench.sh runs
# it); the whole process on CPU 1, NTS-KE and NTP sharing the core (the worst case); and that again
# with ntp.background-nice 0, the control (every thread at the workers' priority). The attack: 1,000 connections from 8 addresses that never finish an
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

# Each layout: NAME PIN NICE. PIN worker: the NTP worker on CPU 1 (ntp.cpu-affinity), the other threads
# wherever the kernel puts them; process: the whole process on CPU 1 (taskset). NICE: ntp.background-nice,
# "default" for the appliance's own default.
layouts=${NTSKE_ATTACK_LAYOUTS:-"worker:worker:default process:process:default control:process:0"}
bench_certificate
p_ntp=$(free_port); p_ke=$(free_tcp_port); p_metrics=$(free_tcp_port)
metrics() { curl -sf "127.0.0.1:$p_metrics/metrics"; }

layout_run() { # NAME PIN NICE: writes $out/ntske-attack-NAME-*
  local name=$1 pin=$2 nice=$3 affinity="" launch=() pid pid_attack pid_flood pid_probe o="$out/ntske-attack-$1"
  case "$pin" in worker) affinity="  cpu-affinity: [$server_cpu]";; process) launch=(taskset -c "$server_cpu");;
    *) echo "ntske-attack.sh: a layout's PIN is worker or process, not '$pin'"; exit 2;; esac
  [ "$nice" = default ] || affinity+=$'\n'"  background-nice: $nice"
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
  rm -rf "$W/keys"
  "${launch[@]}" dotnet "server/Appliance.Server/bin/$CONFIG/net10.0/appliance.dll" serve --config "$W/appliance.yaml" > "$o-appliance.log" 2>&1 & pid=$!; pids+=("$pid")
  for _ in $(seq 1 150); do grep -q "serving NTS-KE" "$o-appliance.log" && grep -q "serving NTP" "$o-appliance.log" && break; sleep 0.2; done
  grep -q "serving NTS-KE" "$o-appliance.log" || { echo "ntske-attack.sh: the appliance did not start:"; cat "$o-appliance.log"; exit 1; }
  sleep 2 # past the first sweep of background-nice (1 s)

  ntp_run() { # PHASE RATE
    local cmd="$LT run 127.0.0.1:$p_ntp --rate $2 --duration $duration --cpu 0 --clients 16 --ports 1 --pid $pid --json $o-$1-$2.json"
    echo "$cmd" > "$o-$1-$2.cmd"
    $cmd > "$o-$1-$2.md"
  }
  echo "== NTS-KE under attack ($name: $pin, background-nice $nice): NTP idle"
  for r in $rates; do ntp_run idle "$r"; done

  echo "== NTS-KE under attack ($name): NTP during $connections unfinished connections and a handshake flood"
  metrics > "$o-metrics-before.txt"
  cmd_attack="$ATTACK attack --target 127.0.0.1:$p_ke --ca $W/server.crt --connections $connections --addresses $addresses --duration $attack_seconds"
  cmd_flood="$LT ntske 127.0.0.1:$p_ke --name ntp.test --ca $W/server.crt --duration ${attack_seconds}s --concurrency 8"
  cmd_probe="$ATTACK probe --target 127.0.0.1:$p_ke --ca $W/server.crt --source 127.0.0.200 --count $probes --interval 1"
  printf '%s\n' "$cmd_attack" "$cmd_flood" "$cmd_probe" > "$o-commands.txt"
  taskset -c 0 $cmd_attack > "$o-attacker.json" & pid_attack=$!; pids+=("$pid_attack")
  taskset -c 0 $cmd_flood > "$o-flood.md" 2> "$o-flood.log" & pid_flood=$!; pids+=("$pid_flood")
  # The open connections, twice a second, for the largest seen.
  ( while kill -0 "$pid_attack" 2>/dev/null; do metrics | awk '$1=="appliance_ntske_connections" {print $2}'; sleep 0.5; done ) > "$o-open.txt" & pids+=("$!")
  sleep 3
  taskset -c 0 $cmd_probe > "$o-probe.json" & pid_probe=$!; pids+=("$pid_probe")
  for r in $rates; do ntp_run attack "$r"; done
  wait "$pid_probe"
  wait "$pid_attack"
  wait "$pid_flood" || true # it counts every refused handshake as failed, and exits 1 for them
  sleep 8 # the last connections end at their 7 s deadline
  metrics > "$o-metrics-after.txt"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
for l in $layouts; do IFS=: read -r name pin nice <<< "$l"; layout_run "$name" "$pin" "$nice"; done

host="$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) vCPU, Linux $(uname -r); load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$out" "$rates" "$connections" "$addresses" "$layouts" "$host" <<'PY'
import json, re, statistics, sys
out, rates, connections, addresses, layouts, host = sys.argv[1], sys.argv[2].split(), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5].split(), sys.argv[6]
layouts = [tuple(l.split(":")) for l in layouts]
def describe(pin, nice):
    where = ("the NTP worker pinned to CPU 1 (`ntp.cpu-affinity`), the other threads where the kernel puts them" if pin == "worker"
             else "the whole process on CPU 1 (`taskset -c 1`), NTS-KE and NTP sharing the core")
    return where + (", `ntp.background-nice` at its default (10)" if nice == "default" else f", `ntp.background-nice: {nice}`")
def step(name, phase, rate):
    return json.load(open(f"{out}/ntske-attack-{name}-{phase}-{rate}.json"))["Steps"][0]
def answered(s):  # of what the generator sent: a generator starved by the attacker sends less, and that is not the server's loss
    return 100 - s["LossPercent"]
def table(name):
    rows = ["| offered NTP/s | answers/s idle | under attack | answered % idle / attack | p99 delay µs idle | under attack | server CPU µs per answer idle / attack |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rates:
        i, a = step(name, "idle", r), step(name, "attack", r)
        flag = lambda s: " (generator-limited)" if s.get("GeneratorLimited") else ""
        cpu = lambda s: f"{s['ServerCpuMicrosPerResponse']:.2f}" if s.get("ServerCpuMicrosPerResponse") is not None else "–"
        rows.append(f"| {int(r):,} | {i['ValidRate']:.0f}{flag(i)} | {a['ValidRate']:.0f}{flag(a)} | {answered(i):.2f} / {answered(a):.2f} | "
                    f"{i['DelayP99Micros']:.0f} | {a['DelayP99Micros']:.0f} | {cpu(i)} / {cpu(a)} |")
    return rows
def probe_line(name):
    probe = json.load(open(f"{out}/ntske-attack-{name}-probe.json"))
    t = sorted(probe["times_ms"])
    return (f"The new client under attack: {len(t)} of {len(t) + len(probe['failures'])} key exchanges completed"
            + (f" (failed: {'; '.join(probe['failures'])})" if probe["failures"] else "")
            + (f", median **{statistics.median(t):.1f} ms**, max **{t[-1]:.1f} ms** (p90 {t[int(0.9 * (len(t) - 1))]:.1f} ms)." if t else "."))
main = layouts[0][0]
cmds = open(f"{out}/ntske-attack-{main}-commands.txt").read().split("\n")
md = ["## NTS-KE under attack\n",
      "One appliance (the JIT build), one NTP worker, NTS-KE with its default limits: 1,000",
      "connections; per client 10 open and 20 new per 10 s; the handshake within 5 s, every exchange over by 7 s",
      "from accept; its NTP answers measured at fixed offered rates, idle and then under an NTS-KE attack, side by",
      f"side in one run, in {len(layouts)} layouts. The attack, on CPU 0 beside the NTP generator: {connections:,} connections from {addresses} addresses",
      "that never finish (a third silent, a third stopping half-way through a ClientHello, a third stopping after",
      "the TLS handshake), each opened again as soon as the server closes it, and a flood of complete key",
      "exchanges from 127.0.0.1 with 8 in flight. Meanwhile a new client from 127.0.0.200 exchanges keys once",
      "a second (a fresh TCP and TLS 1.3 connection each time, timed from connect to the answer's End of Message).",
      "\"Answered\" is of the requests the generator sent: on a 2-CPU host the attacker takes the generator's CPU too,",
      "and then it sends less than offered (\"generator-limited\"), which is not the server's loss.",
      f"Host: {host}; loopback. Command: `BENCH_ONLY=ntske-attack tests/Appliance.Benchmarks/bench.sh`, which runs:\n",
      f"- slow connections: `{cmds[0]}`",
      f"- handshake flood: `{cmds[1]}`",
      f"- the new client: `{cmds[2]}`",
      f"- NTP: `{open(f'{out}/ntske-attack-{main}-idle-{rates[0]}.cmd').read().strip()}` (and `--rate` {', '.join(rates[1:])}), idle, then the same under attack\n"]
for name, pin, nice in layouts:
    md += [f"### {name}: {describe(pin, nice)}\n"] + table(name) + ["", probe_line(name), ""]
top = rates[-1]
md += ["At the highest rate, " + "; ".join(
           f"{name}: {answered(step(name, 'attack', top)):.2f} % of the requests sent answered under attack ({answered(step(name, 'idle', top)):.2f} % idle), "
           f"p99 {step(name, 'attack', top)['DelayP99Micros']:.0f} µs" for name, _, _ in layouts) + ".",
       "`ntp.background-nice` runs every thread but the NTP workers that many nice steps below them (NTS-KE's",
       "handshakes, its accepts and refusals among them), so under CPU contention the workers answer first and",
       "the key exchanges wait; with 0 every thread has the workers' priority.", ""]
def series(name, which):
    counts = {}
    for line in open(f"{out}/ntske-attack-{main}-metrics-{which}.txt"):
        m = re.match(r'appliance_ntske_handshakes_total\{result="(\w+)",reason="(\w+)"\} (\S+)', line)
        if m:
            counts[(m[1], m[2])] = float(m[3])
    return counts
before, after = series(main, "before"), series(main, "after")
ended = {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0) > 0}
attacker = json.load(open(f"{out}/ntske-attack-{main}-attacker.json"))
opened = [float(x) for x in open(f"{out}/ntske-attack-{main}-open.txt").read().split()]
flood = [l for l in open(f"{out}/ntske-attack-{main}-flood.md") if l.startswith("| 127")]
md += [f"The limits, in the {main} layout. NTS-KE connections open, sampled twice a second: at most {max(opened or [0]):.0f} (limit 1,000; {addresses} addresses × 10",
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
