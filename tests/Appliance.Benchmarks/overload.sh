#!/usr/bin/env bash
# The "Overload" section of `make bench` (issue #20): the appliance and chronyd on loopback, each
# pinned whole to CPU 1, offered 1×, 1.5× and 3× the appliance's capacity by `appliance-loadtest` on
# CPU 0, plain NTP and NTS, side by side in one run. The generator's requests stand for 16,384 clients
# polling in turn (`--pollers`, as ntpperf's do): an answer that comes after its client's next request
# is stale, of no use. Reported per step: fresh answers per second and the response time (T4 − T1)
# median and p99. Capacity is the highest rate the appliance held with loss <= 1 % in a short ramp.
# Below capacity (0.5× and 0.75×) the appliance is measured beside itself with `ntp.max-queue-delay:
# off`, to show that shedding changes nothing there.
# Usage: overload.sh OUT [DOC]  (writes OUT/overload.md; with DOC, e.g. docs/benchmarks.md, puts the
# section in place there: where it was, or at the end)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$1
doc=${2:-}
CONFIG=${CONFIG:-Release}
defer_max=$(sysctl -n net.core.skb_defer_max 2>/dev/null || true)
. tests/Appliance.Benchmarks/lib.sh
# As bench.sh: loopback's deferred frees would charge the server IPIs no NIC would.
[ -z "$defer_max" ] || { on_exit+=('sysctl -qw net.core.skb_defer_max="$defer_max"'); sysctl -qw net.core.skb_defer_max=0; }
LT="dotnet loadtest/Appliance.LoadTest/bin/$CONFIG/net10.0/appliance-loadtest.dll"
APP="dotnet server/Appliance.Server/bin/$CONFIG/net10.0/appliance.dll"
pollers=${OVERLOAD_POLLERS:-16384}
seconds=${OVERLOAD_SECONDS:-5}

p_app=$(free_port); p_off=$(free_port); p_ke=$(free_tcp_port); p_chrony=$(free_port); p_chrony_ke=$(free_tcp_port); metrics="127.0.0.1:$(free_port)"
bench_certificate
chown root:_chrony "$W/server.key" "$W/server.crt"; chmod 640 "$W/server.key"; chmod 644 "$W/server.crt"
cat > "$W/overload.yaml" <<YAML
ntp: { listen: ["127.0.0.1:$p_app"], workers: 1, rate-limit: off }
clock: { mode: software, local: { stratum: 1 } }
metrics: { listen: "$metrics" }
$(ntske_yaml "$p_ke" "client-limit: { connections: 100000, interval: 1s }")
YAML
cat > "$W/overload-off.yaml" <<YAML
ntp: { listen: ["127.0.0.1:$p_off"], workers: 1, rate-limit: off, max-queue-delay: off }
clock: { mode: software, local: { stratum: 1 } }
metrics: { listen: off }
YAML
taskset -c "$server_cpu" $APP serve --config "$W/overload.yaml" > "$out/overload-appliance.log" 2>&1 & pid_app=$!; pids+=("$pid_app")
taskset -c "$server_cpu" $APP serve --config "$W/overload-off.yaml" > "$out/overload-off.log" 2>&1 & pid_off=$!; pids+=("$pid_off")
chrony_conf "$p_chrony" "$p_chrony_ke" > "$W/chrony.conf"
taskset -c "$server_cpu" chronyd -x -d -f "$W/chrony.conf" > "$out/overload-chronyd.log" 2>&1 & pid_chrony=$!; pids+=("$pid_chrony")
for log in overload-appliance overload-off; do
  for _ in $(seq 1 100); do grep -q "serving NTP" "$out/$log.log" && break; sleep 0.1; done
  grep -q "serving NTP" "$out/$log.log" || { echo "overload.sh: the appliance did not start:"; cat "$out/$log.log"; exit 1; }
done
sleep 1
gen="--cpu 0 --clients 16 --ports 1 --pollers $pollers"
nts_app="--nts --ntske 127.0.0.1:$p_ke --ntske-name ntp.test --ca $W/server.crt"
nts_chrony="--vs-ntske 127.0.0.1:$p_chrony_ke --vs-ntske-name ntp.test --vs-ca $W/server.crt"
stale() { curl -sf "http://$metrics/metrics" | awk '$1=="appliance_ntp_drops_total{reason=\"stale\"}" {print $2; f=1} END {if (!f) print 0}'; }

# capacity NAME ARGS...: the appliance's highest rate held in a short ramp.
capacity() {
  local name=$1; shift
  local cmd="$LT ramp 127.0.0.1:$p_app $* --from 50000 --factor 1.15 --to 900000 --step-duration 2s $gen --pid $pid_app --json $out/overload-capacity-$name.json"
  echo "$cmd" > "$out/overload-capacity-$name.cmd"
  $cmd > "$out/overload-capacity-$name.md"
  python3 -c 'import json,sys; print(int(max(v or 0 for v in json.load(open(sys.argv[1]))["MaxHeldRate"].values())))' "$out/overload-capacity-$name.json"
}
echo "== overload: the appliance's capacity"
cap_ntp=$(capacity ntp); cap_nts=$(capacity nts $nts_app)
echo "capacity: plain $cap_ntp/s, NTS $cap_nts/s"
echo "$cap_ntp $cap_nts" > "$out/overload-capacity"
echo "$(stale)" > "$out/overload-stale-before"
for proto in ntp nts; do
  cap=$([ $proto = ntp ] && echo "$cap_ntp" || echo "$cap_nts")
  args=$([ $proto = ntp ] && echo "" || echo "$nts_app $nts_chrony")
  for m in 1 1.5 3; do
    r=$(python3 -c "print(round($cap * $m))")
    cmd="$LT run 127.0.0.1:$p_app --vs 127.0.0.1:$p_chrony $args --rate $r --duration ${seconds}s $gen --pid $pid_app --vs-pid $pid_chrony --json $out/overload-$proto-$m.json"
    echo "== overload: $proto at ${m}× ($r/s)"
    echo "$cmd" > "$out/overload-$proto.cmd"
    $cmd > "$out/overload-$proto-$m.md"
  done
done
echo "$(stale)" > "$out/overload-stale-after"
for m in 0.5 0.75; do
  echo "$(stale)" > "$out/overload-stale-below-$m-before"
  r=$(python3 -c "print(round($cap_ntp * $m))")
  cmd="$LT run 127.0.0.1:$p_app --vs 127.0.0.1:$p_off --rate $r --duration ${seconds}s $gen --pid $pid_app --vs-pid $pid_off --json $out/overload-below-$m.json"
  echo "== below capacity: plain at ${m}× ($r/s), the budget vs off"
  echo "$cmd" > "$out/overload-below.cmd"
  $cmd > "$out/overload-below-$m.md"
  echo "$(stale)" > "$out/overload-stale-below-$m-after"
done

host="$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) vCPUs ($(lscpu | sed -n 's/^Model name: *//p' | head -1)), Linux $(uname -r)"
python3 - "$out" "$host" "$p_app" "$pollers" <<'PY'
import json, sys
out, host, p_app, pollers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def number(name): return float(open(f"{out}/{name}").read())
cap_ntp, cap_nts = (int(x) for x in open(f"{out}/overload-capacity").read().split())
stale = number("overload-stale-after") - number("overload-stale-before")
below = []
for m in ("0.5", "0.75"):
    steps = json.load(open(f"{out}/overload-below-{m}.json"))["Steps"]
    on = next(s for s in steps if s["Target"].endswith(f":{p_app}"))
    off = next(s for s in steps if not s["Target"].endswith(f":{p_app}"))
    def cells(s): return f"{s['LossPercent']:.3f} % | {s['ResponseTimeP50Micros'] / 1000:.2f} / {s['ResponseTimeP99Micros'] / 1000:.2f} ms"
    shed = number(f"overload-stale-below-{m}-after") - number(f"overload-stale-below-{m}-before")
    below.append(f"| {m}× ({on['TargetRate']:,.0f}/s) | {cells(on)} | {shed:,.0f} | {cells(off)} |")
below_cmd = open(f"{out}/overload-below.cmd").read().strip()
rows = []
for proto, cap in (("ntp", cap_ntp), ("nts", cap_nts)):
    own = None
    for m in ("1", "1.5", "3"):
        steps = json.load(open(f"{out}/overload-{proto}-{m}.json"))["Steps"]
        app = next(s for s in steps if s["Target"].endswith(f":{p_app}"))
        chrony = next(s for s in steps if not s["Target"].endswith(f":{p_app}"))
        own = own or app["FreshRate"]
        limited = " (generator-limited)" if app["GeneratorLimited"] or chrony["GeneratorLimited"] else ""
        rows.append(f"| {'plain' if proto == 'ntp' else 'NTS'} | {m}× ({app['TargetRate']:,.0f}/s){limited} | "
                    f"{app['FreshRate']:,.0f} ({100 * app['FreshRate'] / max(own, 1):.0f} % of 1×) | {app['ResponseTimeP50Micros'] / 1000:.2f} / {app['ResponseTimeP99Micros'] / 1000:.2f} ms | "
                    f"{chrony['FreshRate']:,.0f} | {chrony['ResponseTimeP50Micros'] / 1000:.2f} / {chrony['ResponseTimeP99Micros'] / 1000:.2f} ms | "
                    f"{app['FreshRate'] / max(chrony['FreshRate'], 1):.2f}× |")
cmd = open(f"{out}/overload-ntp.cmd").read().strip()
cmd_nts = open(f"{out}/overload-nts.cmd").read().strip()
cap_cmd = open(f"{out}/overload-capacity-ntp.cmd").read().strip()
text = ("## Overload\n\n"
        "Command: `BENCH_ONLY=overload make bench` (tests/Appliance.Benchmarks/overload.sh): the appliance "
        "(`ntp: { workers: 1, rate-limit: off }`, `ntp.max-queue-delay` at its default 2 ms) and chronyd 4.3, each pinned whole to CPU 1, "
        f"the generator on CPU 0. Run on {host}, {pollers:,} simulated clients polling in turn (`--pollers`): an answer that arrives after its "
        "client's next request was sent is stale. Capacity: the appliance's highest rate held with loss ≤ 1 % in a short ramp "
        f"(`{cap_cmd}`, and the same with `--nts`): plain {cap_ntp:,}/s, NTS {cap_nts:,}/s. Each step: `{cmd}` (NTS: `{cmd_nts}`).\n\n"
        "| protocol | offered | appliance: fresh answers/s | its response time p50 / p99 | chronyd: fresh answers/s | its response time p50 / p99 | fresh, appliance / chronyd |\n"
        "| --- | --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows) + "\n\n"
        f"The appliance shed {stale:,.0f} requests as stale over these steps (`appliance_ntp_drops_total{{reason=\"stale\"}}`): each had waited over "
        "2 ms in its socket's queue while the worker was overloaded (its queue standing for 100 ms). Response time is the client's T4 − T1 of the answers it got, the queue included.\n\n"
        "Below capacity, plain NTP, the appliance with its default budget beside itself with `ntp.max-queue-delay: off` (a second process on the same CPU, "
        f"alternated step by step: `{below_cmd}`):\n\n"
        "| offered | with the 2 ms budget: loss | response time p50 / p99 | shed as stale | budget off: loss | response time p50 / p99 |\n"
        "| --- | --- | --- | --- | --- | --- |\n" + "\n".join(below) + "\n")
open(f"{out}/overload.md", "w").write(text)
print(text)
PY
[ -z "$doc" ] || put_section "$out/overload.md" "$doc"
