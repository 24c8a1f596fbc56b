#!/usr/bin/env bash
# The "Roughtime over the wire" section of `make bench` (issue #19): the appliance's Roughtime
# listener on loopback, the whole process pinned to CPU 1, `appliance-loadtest roughtime` on CPU 0
# (closed loop, two sockets), side by side in one run: one request in flight per socket (batches of
# one or two: about a signature per answer) and 64 in flight per socket (recvmmsg batches: one
# signature answers many). Requests and signatures per second come from the server's own counters
# (appliance_roughtime_responses_total, appliance_roughtime_signatures_total) over each step, its CPU
# from /proc/PID/stat; the generator verifies one answer in 100 in full (RFC 10049 §5.4).
# Usage: roughtime.sh OUT [DOC]  (writes OUT/roughtime.md; with DOC, e.g. docs/benchmarks.md, puts the
# section in place there: after "## Roughtime server, in memory" the first time, where it was after that)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$1
doc=${2:-}
CONFIG=${CONFIG:-Release}
. tests/Appliance.Benchmarks/lib.sh
LT="dotnet loadtest/Appliance.LoadTest/bin/$CONFIG/net10.0/appliance-loadtest.dll"
APP="dotnet server/Appliance.Server/bin/$CONFIG/net10.0/appliance.dll"
duration=${ROUGHTIME_SECONDS:-10}

port=$(free_port); rt_port=$(free_port); metrics="127.0.0.1:$(free_port)"
cat > "$W/roughtime.yaml" <<YAML
ntp: { listen: ["127.0.0.1:$port"], workers: 1, rate-limit: off }
clock: { mode: software, local: { stratum: 1 } }
metrics: { listen: "$metrics" }
control: { socket: $W/control.sock }
roughtime: { listen: ["127.0.0.1:$rt_port"], tcp: false, key: $W/roughtime.key }
YAML
taskset -c "$server_cpu" $APP serve --config "$W/roughtime.yaml" > "$out/roughtime-appliance.log" 2>&1 & pid=$!; pids+=("$pid")
for _ in $(seq 1 100); do grep -q "serving Roughtime" "$out/roughtime-appliance.log" && break; sleep 0.1; done
grep -q "serving Roughtime" "$out/roughtime-appliance.log" || { echo "roughtime.sh: the appliance did not start:"; cat "$out/roughtime-appliance.log"; exit 1; }
key=$($APP keys --json --socket "$W/control.sock" | python3 -c 'import json,sys; print(json.load(sys.stdin)["roughtime"]["public_key"])')

scrape() { curl -sf "http://$metrics/metrics" | awk -v m="$1" '$1==m {print $2; f=1} END {if (!f) print 0}'; }
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
# step NAME WINDOW: one measured run; OUT/roughtime-NAME.txt holds the loadtest's table, .counts the server's deltas.
step() {
  local cmd="$LT roughtime 127.0.0.1:$rt_port --public-key $key --duration ${duration}s --clients 2 --window $2 --cpu 0"
  echo "$cmd" > "$out/roughtime-$1.cmd"
  local r0 s0 t0 a0; r0=$(scrape 'appliance_roughtime_responses_total{transport="udp"}'); s0=$(scrape appliance_roughtime_signatures_total); t0=$(ticks)
  a0=$(scrape appliance_process_allocated_bytes_total)
  $cmd > "$out/roughtime-$1.txt"
  echo "$(scrape 'appliance_roughtime_responses_total{transport="udp"}') $r0 $(scrape appliance_roughtime_signatures_total) $s0 $(ticks) $t0 $(getconf CLK_TCK)" \
    "$(scrape appliance_process_allocated_bytes_total) $a0" > "$out/roughtime-$1.counts"
}
echo "== Roughtime over the wire (${duration} s per step)"
# A short warm-up (the JIT, the first online key), not measured.
$LT roughtime "127.0.0.1:$rt_port" --public-key "$key" --duration 2s --clients 2 --window 8 --cpu 0 > /dev/null
step one 1
step batched 64

host="$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) vCPUs ($(lscpu | sed -n 's/^Model name: *//p' | head -1)), Linux $(uname -r)"
python3 - "$out" "$duration" "$host" <<'PY'
import sys
out, duration, host = sys.argv[1], float(sys.argv[2]), sys.argv[3]
rows, figures = [], {}
for name, label in (("one", "1 in flight per socket"), ("batched", "64 in flight per socket")):
    r1, r0, s1, s0, t1, t0, hz, a1, a0 = (float(x) for x in open(f"{out}/roughtime-{name}.counts").read().split())
    answers, signatures, cpu = r1 - r0, s1 - s0, (t1 - t0) / hz
    table = [l for l in open(f"{out}/roughtime-{name}.txt").read().splitlines() if l.startswith("| 127.")][0]
    cells = [c.strip() for c in table.strip("|").split("|")]
    figures[name] = answers / duration
    rows.append(f"| {label} | {answers / duration:,.0f} | {signatures / duration:,.0f} | {answers / max(signatures, 1):.1f} | "
                f"{cpu / duration * 100:.0f} % | {cpu / max(answers, 1) * 1e6:.1f} µs | {(a1 - a0) / max(answers, 1):.2f} B | {cells[3]} of {cells[2]} | {cells[4]} | {cells[5]} |")
cmd = open(f"{out}/roughtime-batched.cmd").read().strip()
text = ("## Roughtime over the wire\n\n"
        f"Command: `BENCH_ONLY=roughtime make bench` (tests/Appliance.Benchmarks/roughtime.sh); each step `{cmd}` "
        "(the first with `--window 1`), against the appliance with `roughtime: { listen: [127.0.0.1:PORT], tcp: false }`, "
        f"the whole process pinned to CPU 1, the generator on CPU 0. Run on {host}, {duration:.0f} s per step, one run.\n\n"
        "| load | answers/s | signatures/s | answers per signature | server CPU | server CPU per answer | allocated per answer | verified in full (generator) | rejected | lost |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows) + "\n\n"
        f"Batching answers {figures['batched'] / max(figures['one'], 1):.2f}× as many requests per second as one request at a time, "
        "measured side by side in this run. Answers and signatures are the server's counters over each step; CPU is its process's "
        "user + system time (all threads: the Roughtime thread, the clock, the metrics scrapes); allocated is the whole process's "
        "managed heap (appliance_process_allocated_bytes_total: the scrapes and the clock included) over the step, per answer: "
        "a rate the same at both loads is that background, and the request path allocates nothing. The generator (2 threads on one CPU, "
        "a blocking send and receive per request) may be the limit of the batched step: the in-memory figures above are the server's own cost.\n")
open(f"{out}/roughtime.md", "w").write(text)
print(text)
PY
if [ -n "$doc" ]; then
  python3 - "$out/roughtime.md" "$doc" <<'PY'
import re, sys
section, path = open(sys.argv[1]).read().rstrip("\n") + "\n", sys.argv[2]
doc = open(path).read()
pattern = r"## Roughtime over the wire\n.*?(?=\n## |\Z)"
if re.search(pattern, doc, flags=re.S):
    doc = re.sub(pattern, lambda _: section, doc, flags=re.S)
else:
    m = re.search(r"## Roughtime server, in memory.*?(?=\n## |\Z)", doc, flags=re.S)
    doc = doc[:m.end()] + "\n\n" + section + doc[m.end():] if m else doc.rstrip("\n") + "\n\n" + section
open(path, "w").write(doc)
PY
fi
