#!/usr/bin/env bash
# The "Interleaved mode over the wire" section of `make bench` (issue #19): one appliance on loopback
# (one worker, the whole process pinned to CPU 1), `appliance-loadtest` on CPU 0 offering the same
# server basic-mode requests and interleaved-mode ones (RFC 9769: each names an earlier response, whose
# kernel transmit timestamp the answer carries) step by step, side by side in one run:
#   - CPU per response at 30 k and 100 k requests/s (under the capacity of one worker pinned with the whole process here), three rounds (who goes first alternates), the
#     median of each kept: what the interleaved table and the kernel's looped transmit timestamps cost;
#   - a ramp, alternating per step: the highest rate held with loss <= 1 % in each mode.
# The server's own counters (interleaved answers, kernel transmit timestamps saved) are scraped over
# the whole run, to show the interleaved steps were answered in interleaved mode.
# Usage: interleaved.sh OUT [DOC]  (writes OUT/interleaved.md; with DOC, e.g. docs/benchmarks.md,
# puts the section in place there: where it was, or at the end)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$1
doc=${2:-}
CONFIG=${CONFIG:-Release}
. tests/Appliance.Benchmarks/lib.sh
LT="dotnet loadtest/Appliance.LoadTest/bin/$CONFIG/net10.0/appliance-loadtest.dll"
APP="dotnet server/Appliance.Server/bin/$CONFIG/net10.0/appliance.dll"
rounds=${INTERLEAVED_ROUNDS:-3}
rates=${INTERLEAVED_RATES:-30000 100000}

port=$(free_port); metrics="127.0.0.1:$(free_port)"
cat > "$W/interleaved.yaml" <<YAML
ntp: { listen: ["127.0.0.1:$port"], workers: 1, rate-limit: off }
clock: { mode: software, local: { stratum: 1 } }
metrics: { listen: "$metrics" }
control: { socket: $W/control.sock }
YAML
taskset -c "$server_cpu" $APP serve --config "$W/interleaved.yaml" > "$out/interleaved-appliance.log" 2>&1 & pid=$!; pids+=("$pid")
for _ in $(seq 1 100); do grep -q "serving NTP" "$out/interleaved-appliance.log" && break; sleep 0.1; done
grep -q "serving NTP" "$out/interleaved-appliance.log" || { echo "interleaved.sh: the appliance did not start:"; cat "$out/interleaved-appliance.log"; exit 1; }
sleep 1
scrape() { curl -sf "http://$metrics/metrics" | awk -v m="$1" '$1==m {print $2; f=1} END {if (!f) print 0}'; }
gen="--cpu 0 --clients 16 --ports 1 --pid $pid"
counters() { echo "$(scrape appliance_ntp_interleaved_responses_total) $(scrape 'appliance_ntp_kernel_transmit_timestamps_total{source="kernel_software",result="saved"}') $(scrape 'appliance_ntp_kernel_transmit_timestamps_total{source="kernel_software",result="unmatched"}') $(scrape appliance_ntp_kernel_transmit_timestamps_unreadable_total)"; }
echo "$(counters)" > "$out/interleaved-counters-before"

echo "== interleaved vs basic mode: CPU per response ($rounds rounds)"
for i in $(seq 1 "$rounds"); do
  for r in $rates; do
    if (( i % 2 )); then pair="--vs-protocol interleaved"; else pair="--interleaved --vs-protocol ntp"; fi
    cmd="$LT run 127.0.0.1:$port --vs 127.0.0.1:$port $pair --rate $r --duration 5s $gen --json $out/interleaved-cpu-$r-$i.json"
    echo "$cmd" > "$out/interleaved-cpu.cmd"
    $cmd > "$out/interleaved-cpu-$r-$i.md"
  done
done
echo "== interleaved vs basic mode (ramp, alternating)"
cmd_ramp="$LT ramp 127.0.0.1:$port --vs 127.0.0.1:$port --vs-protocol interleaved --from 60000 --factor 1.15 --to 900000 --step-duration 3s $gen --json $out/interleaved-ramp.json"
echo "$cmd_ramp" > "$out/interleaved-ramp.cmd"
$cmd_ramp > "$out/interleaved-ramp.md"
echo "$(counters)" > "$out/interleaved-counters-after"

host="$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) vCPUs ($(lscpu | sed -n 's/^Model name: *//p' | head -1)), Linux $(uname -r)"
python3 - "$out" "$rounds" "$rates" "$host" <<'PY'
import json, statistics, sys
out, rounds, rates, host = sys.argv[1], int(sys.argv[2]), [int(r) for r in sys.argv[3].split()], sys.argv[4]
def mode(step): return "interleaved" if step["Protocol"] == "interleaved" else "basic"
rows, ratios = [], {}
for r in rates:
    cpu = {"basic": [], "interleaved": []}
    share, loss = [], {"basic": [], "interleaved": []}
    for i in range(1, rounds + 1):
        for s in json.load(open(f"{out}/interleaved-cpu-{r}-{i}.json"))["Steps"]:
            cpu[mode(s)].append(s["ServerCpuMicrosPerResponse"])
            loss[mode(s)].append(s["LossPercent"])
            if mode(s) == "interleaved":
                extra = s["Extra"]
                share.append(100.0 * extra.get("interleaved", 0) / max(1, extra.get("interleaved", 0) + extra.get("basic", 0)))
    b, x = statistics.median(cpu["basic"]), statistics.median(cpu["interleaved"])
    ratios[r] = x / b
    rows.append(f"| {r:,} | {b:.2f} µs | {x:.2f} µs | {x / b:.2f}× | {statistics.median(share):.1f} % | "
                f"{max(loss['basic']):.2f} % / {max(loss['interleaved']):.2f} % |")
ramp = json.load(open(f"{out}/interleaved-ramp.json"))
held = {("interleaved" if "(interleaved)" in t else "basic"): v for t, v in ramp["MaxHeldRate"].items()}
before = [float(x) for x in open(f"{out}/interleaved-counters-before").read().split()]
after = [float(x) for x in open(f"{out}/interleaved-counters-after").read().split()]
d = [a - b for a, b in zip(after, before)]
cmd = open(f"{out}/interleaved-cpu.cmd").read().strip()
cmd_ramp = open(f"{out}/interleaved-ramp.cmd").read().strip()
def rate(v): return "none" if v is None else f"{v:,.0f}/s"
ratio = f"{held['interleaved'] / held['basic']:.2f}×" if held.get("interleaved") and held.get("basic") else "n/a"
text = ("## Interleaved mode over the wire\n\n"
        "Command: `BENCH_ONLY=interleaved make bench` (tests/Appliance.Benchmarks/interleaved.sh): one appliance "
        "(`ntp: { workers: 1, rate-limit: off }`, the software clock), the whole process pinned to CPU 1, the generator on CPU 0, "
        "offered basic-mode requests and interleaved ones (`--interleaved`: each names an earlier response's receive timestamp, "
        "so the answer carries that response's transmit timestamp, the kernel's, read back from the error queue) one after the other "
        f"in each step. Run on {host}.\n\n"
        f"CPU per response: `{cmd}` (who goes first alternates; {rounds} rounds, the median of each):\n\n"
        "| rate | basic | interleaved | interleaved / basic | interleaved answers (of the interleaved step's) | worst loss basic / interleaved |\n"
        "| --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows) + "\n\n"
        f"Ramp, alternating per step: `{cmd_ramp}`: highest rate held with loss ≤ 1 %: basic {rate(held.get('basic'))}, "
        f"interleaved {rate(held.get('interleaved'))} ({ratio}).\n\n"
        f"Over the whole run the server answered {d[0]:,.0f} requests in interleaved mode and saved {d[1]:,.0f} kernel transmit "
        f"timestamps ({d[2]:,.0f} came after their response had been answered from or evicted, {d[3]:,.0f} unreadable). "
        "An interleaved answer costs a table lookup, a save, and the kernel's copy of the sent datagram with its timestamp "
        "(read with one more recvmmsg per batch); a basic answer asks for none of them. A client's first request is basic, "
        "so the interleaved share is under 100 %.\n")
open(f"{out}/interleaved.md", "w").write(text)
print(text)
PY
[ -z "$doc" ] || put_section "$out/interleaved.md" "$doc"
