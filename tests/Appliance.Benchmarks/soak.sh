#!/usr/bin/env bash
# `make soak` (issue #18): the Native AOT appliance at half its capacity for SOAK_MINUTES (default 60),
# plain NTP and NTS side by side, with NTS-KE handshakes and key rotations during the load. Passes when
# RSS stays flat, the NTP workers allocate nothing, no NTS NAK is sent, no worker restarts, every
# handshake succeeds and the appliance lives to the end; exits 1 otherwise (soak_report.py decides).
#
# Settings (environment):
#   SOAK_MINUTES          minutes of load (default 60)
#   SOAK_RATE             total requests/s offered, half plain and half NTS (default: measured, see below)
#   SOAK_WARMUP_SECONDS   RSS samples left out of the slope (default: a tenth of the run, 30 s to 300 s)
#   SOAK_RSS_SLOPE_MAX    the slope bound in KiB/h (default 512, see soak_report.py)
#   SOAK_HANDSHAKE_EVERY  seconds between NTS-KE handshakes (default 5)
#   SOAK_ROTATE_EVERY     seconds between `appliance rotate-keys` (default a third of the run)
#   SOAK_UPDATE_DOCS=1    put the "## Soak" section into docs/benchmarks.md (off by default, so that a
#                         short try does not replace the record of a full run)
#   SOAK_NOTE             a sentence for the section (e.g. what else ran on the machine)
# Results: out/soak/ (soak.md the section, verdict.txt, rss.tsv, the generators' JSON, both scrapes).
set -euo pipefail
cd "$(dirname "$0")/../.."
CONFIG=${CONFIG:-Release}
minutes=${SOAK_MINUTES:-60}
handshake_every=${SOAK_HANDSHAKE_EVERY:-5}
out=out/soak
rm -rf "$out"; mkdir -p "$out"
. tests/Appliance.Benchmarks/lib.sh

[ -x out/bin/appliance ] || { echo "soak.sh: out/bin/appliance is missing: run make publish first"; exit 1; }
LT_DLL=loadtest/Appliance.LoadTest/bin/$CONFIG/net10.0/appliance-loadtest.dll
[ -f "$LT_DLL" ] || { echo "soak.sh: $LT_DLL is missing: run make build first"; exit 1; }
LT="dotnet $LT_DLL"
seconds=$(python3 -c "print(int(float('$minutes') * 60))")
(( seconds >= 60 )) || { echo "soak.sh: SOAK_MINUTES is at least 1"; exit 2; }
warmup=${SOAK_WARMUP_SECONDS:-$(( seconds / 10 < 30 ? 30 : (seconds / 10 > 300 ? 300 : seconds / 10) ))}
rotate_every=${SOAK_ROTATE_EVERY:-$(( seconds / 3 ))}
gen_cpu=0

p_ntp=$(free_port); p_metrics=$(free_tcp_port); p_ke=$(free_tcp_port)
bench_certificate
# rate-limit off: two generators of 16 addresses each at tens of thousands of requests/s would be
# limited at once. client-limit: the handshaker and the generators' NTS-KE all come from 127.0.0.1.
cat > "$W/appliance.yaml" <<YAML
ntp:
  listen: ["127.0.0.1:$p_ntp"]
  workers: 1
  rate-limit: off
clock: { mode: software, local: { stratum: 1 } }
metrics: { listen: "127.0.0.1:$p_metrics" }
control: { socket: $W/control.sock }
$(ntske_yaml "$p_ke" "client-limit: { connections: 100000, interval: 1s }")
YAML
cp "$W/appliance.yaml" "$out/appliance.yaml"
out/bin/appliance validate "$W/appliance.yaml" > /dev/null
# The whole process on the server's CPU (workers, NTS-KE, scrapes), the generators on the other.
taskset -c "$server_cpu" out/bin/appliance serve --config "$W/appliance.yaml" > "$out/appliance.log" 2>&1 & pid=$!; pids+=("$pid")
for _ in $(seq 1 100); do grep -q "serving NTP" "$out/appliance.log" && break; sleep 0.1; done
grep -q "serving NTP" "$out/appliance.log" || { echo "soak.sh: the appliance did not start:"; cat "$out/appliance.log"; exit 1; }
sleep 1
scrape() { curl -sf "127.0.0.1:$p_metrics/metrics"; }
vmrss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
nts_args="--nts --ntske 127.0.0.1:$p_ke --ntske-name ntp.test --ca $W/server.crt"
gen="--cpu $gen_cpu --clients 16 --ports 1"

if [ -n "${SOAK_RATE:-}" ]; then
  rate_plain=$(( SOAK_RATE / 2 )); rate_nts=$(( SOAK_RATE - rate_plain ))
  rate_text="SOAK_RATE=$SOAK_RATE requests/s, $rate_plain plain and $rate_nts NTS."
else
  # Capacity the quick way (bench.sh's "maximum response rates"): offered more than it can answer, a
  # server answers at its capacity. Half of it in a mix: a quarter of each protocol's capacity each.
  echo "== capacity: 5 s of plain NTP and 5 s of NTS, each offered above capacity"
  $LT run "127.0.0.1:$p_ntp" --rate 800000 --duration 5s $gen --json "$out/capacity-plain.json" > /dev/null
  $LT run "127.0.0.1:$p_ntp" $nts_args --rate 600000 --duration 5s $gen --json "$out/capacity-nts.json" > /dev/null
  cap() { python3 -c "import json; print(int(json.load(open('$1'))['Steps'][0]['ValidRate']))"; }
  cap_plain=$(cap "$out/capacity-plain.json"); cap_nts=$(cap "$out/capacity-nts.json")
  rate_plain=$(( cap_plain / 4 )); rate_nts=$(( cap_nts / 4 ))
  rate_text="half of the capacity measured at the start (plain NTP $cap_plain/s, NTS $cap_nts/s, each offered above it for 5 s), split evenly: **$rate_plain plain + $rate_nts NTS requests/s**, a quarter of each protocol's capacity."
fi

# appliance_ntp_worker_allocated_bytes_total is the worker thread's total since it started, first
# published after its first batch (NtpWorker.Serve): the thread's set-up (6,200 B here) appears with the
# first request. Both paths served once before the start scrape, so the window holds only steady state.
$LT run "127.0.0.1:$p_ntp" --rate 1000 --duration 1s --warmup 0s $gen > /dev/null 2>&1
$LT run "127.0.0.1:$p_ntp" $nts_args --rate 1000 --duration 1s --warmup 0s $gen > /dev/null 2>&1
# The heap to its working size before RSS is measured: the workers allocate nothing, so the managed
# heap grows only with what NTS-KE, scrapes and control verbs allocate (~8 kB per handshake), and the
# workstation GC first collects after ~16 MB of it. At the soak's handshake rate that is most of an
# hour, and RSS climbs ~15 MiB (31 to 46 MiB here) to a plateau it then holds (measured: 46.27 to
# 46.29 MiB over 60,000 more handshakes). A burst of handshakes takes the heap through several
# collections first, so that the slope measures growth, not the first use of the gen-0 budget.
gc0() { scrape | awk '$1=="dotnet_collection_count_total{generation=\"0\"}" {print $2}'; }
rss_boot=$(vmrss "$pid"); gc_boot=$(gc0)
taskset -c "$gen_cpu" $LT ntske "127.0.0.1:$p_ke" --name ntp.test --ca "$W/server.crt" --duration 20s --concurrency 4 > "$out/warmup-ntske.md" 2>&1 || true
rss_warm=$(vmrss "$pid"); gc_warm=$(gc0)
warm_handshakes=$(awk -F'|' '/^\| 127/ {gsub(/ /,""); print $4}' "$out/warmup-ntske.md")
echo "== heap warm-up: ${warm_handshakes:-0} handshakes, gen-0 collections $gc_boot -> $gc_warm, RSS $rss_boot -> $rss_warm KiB"
echo "== soak: $minutes min at $rate_plain plain + $rate_nts NTS requests/s; handshake every $handshake_every s, rotate-keys every $rotate_every s"
scrape > "$out/metrics-start.txt"
# Host-wide UDP receive-queue overflows (/proc/net/snmp): where a datagram the server never read went.
udp_rcvbuf() { awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "RcvbufErrors") c = i; h = 1 } else print $c }' /proc/net/snmp; }
rcvbuf0=$(udp_rcvbuf)
start_epoch=$(date +%s); end_epoch=$(( start_epoch + seconds ))
started=$(date -u +'%Y-%m-%d %H:%M')

# VmRSS every 10 s, with the seconds since the load started.
( while (( $(date +%s) < end_epoch )) && [ -e "/proc/$pid" ]; do
    echo "$(( $(date +%s) - start_epoch )) $(vmrss "$pid")"; sleep 10
  done ) > "$out/rss.tsv" & pids+=("$!")
# Every minute, the counters that matter, to tell when something happened (e.g. around a rotation).
( while (( $(date +%s) < end_epoch )) && [ -e "/proc/$pid" ]; do
    sleep 60; s=$(scrape) || continue
    echo "$(( $(date +%s) - start_epoch )) rss=$(vmrss "$pid") $(awk '/^(appliance_ntp_requests_total|appliance_ntp_worker_allocated_bytes_total|appliance_ntp_worker_restarts_total|appliance_nts_key_rotations_total|appliance_process_allocated_bytes_total|dotnet_total_memory_bytes|dotnet_collection_count_total)[ {]/ {printf "%s=%s ", $1, $2}' <<< "$s")naks=$(awk '/^appliance_ntp_responses_total\{kind="kod",reason="nts_cookie/ {n+=$2} END {print n+0}' <<< "$s")"
  done ) > "$out/counters.tsv" & pids+=("$!")
# An NTS-KE handshake every few seconds: one client, one full exchange (TLS 1.3, records, 8 cookies).
# Each line: seconds, ok, failed.
( while (( $(date +%s) < end_epoch )) && [ -e "/proc/$pid" ]; do
    t=$(( $(date +%s) - start_epoch ))
    if r=$(taskset -c "$gen_cpu" $LT ntske "127.0.0.1:$p_ke" --name ntp.test --ca "$W/server.crt" --duration 100ms --concurrency 1 2>/dev/null); then :; fi
    awk -v t="$t" -F'|' '/^\| 127/ {gsub(/ /,""); print t, $4, $5; found=1} END {if (!found) print t, 0, 1}' <<< "$r"
    sleep "$handshake_every"
  done ) > "$out/handshakes.tsv" & pids+=("$!")
# appliance rotate-keys every rotate_every seconds, from the first period's end while load remains.
( n=1; while (( start_epoch + n * rotate_every < end_epoch - 30 )); do
    wait_s=$(( start_epoch + n * rotate_every - $(date +%s) )); (( wait_s > 0 )) && sleep "$wait_s"
    [ -e "/proc/$pid" ] || break
    if r=$(out/bin/appliance rotate-keys --socket "$W/control.sock" 2>&1); then echo "$(( $(date +%s) - start_epoch )) ok $r" | tr '\n' ' '; echo
    else echo "$(( $(date +%s) - start_epoch )) failed $r" | tr '\n' ' '; echo; fi
    n=$(( n + 1 ))
  done ) > "$out/rotations.tsv" & pids+=("$!")

# The two generators in back-to-back runs of at most 10 min (the generator's limit) to the end.
run=0; plain_runs=(); nts_runs=()
cmd_plain="$LT run 127.0.0.1:$p_ntp --rate $rate_plain --duration DURs --warmup 0s $gen --json $out/plain-N.json"
cmd_nts="$LT run 127.0.0.1:$p_ntp $nts_args --rate $rate_nts --duration DURs --warmup 0s $gen --json $out/nts-N.json"
while left=$(( end_epoch - $(date +%s) )); (( left > 5 )) && [ -e "/proc/$pid" ]; do
  run=$(( run + 1 )); d=$(( left < 600 ? left : 600 ))
  c1=${cmd_plain//DUR/$d}; c1=${c1//-N/-$run}; c2=${cmd_nts//DUR/$d}; c2=${c2//-N/-$run}
  echo "   run $run: $d s"
  $c1 > "$out/plain-$run.md" 2> "$out/plain-$run.err" & g1=$!
  $c2 > "$out/nts-$run.md" 2> "$out/nts-$run.err" & g2=$!
  wait "$g1" || echo "soak.sh: the plain generator's run $run failed (exit $?): $(tail -3 "$out/plain-$run.err")"
  wait "$g2" || echo "soak.sh: the NTS generator's run $run failed (exit $?): $(tail -3 "$out/nts-$run.err")"
  [ -f "$out/plain-$run.json" ] && plain_runs+=("$out/plain-$run.json")
  [ -f "$out/nts-$run.json" ] && nts_runs+=("$out/nts-$run.json")
done
finished=$(date -u +'%Y-%m-%d %H:%M')
rcvbuf1=$(udp_rcvbuf)
alive=false; kill -0 "$pid" 2>/dev/null && alive=true
if $alive; then
  scrape > "$out/metrics-end.txt"
else
  echo "soak.sh: the appliance exited during the soak:"; tail -20 "$out/appliance.log"
  cp "$out/metrics-start.txt" "$out/metrics-end.txt"
fi
sleep 1  # the samplers see the end
rotations=$(grep -c ' ok ' "$out/rotations.tsv" || true)

host="$(nproc) vCPU $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), Linux $(uname -r)"
cmd="SOAK_MINUTES=$minutes${SOAK_RATE:+ SOAK_RATE=$SOAK_RATE}${SOAK_UPDATE_DOCS:+ SOAK_UPDATE_DOCS=$SOAK_UPDATE_DOCS} make soak"
python3 - "$out" <<PY
import json, sys
json.dump({
  "minutes": $seconds / 60, "warmup_seconds": $warmup, "rss_slope_max": "${SOAK_RSS_SLOPE_MAX:-}",
  "handshake_every": $handshake_every, "rotate_every": $rotate_every, "rotations_forced": $rotations,
  "alive": "$alive" == "true", "server_cpu": $server_cpu, "generator_cpu": $gen_cpu,
  "started": "$started", "finished": "$finished", "host": "$host", "command": "$cmd",
  "note": """${SOAK_NOTE:-}""", "rate_text": """$rate_text""",
  "udp_rcvbuf_errors": $(( rcvbuf1 - rcvbuf0 )),
  "warmup": {"handshakes": int("${warm_handshakes:-0}" or 0), "gc0_before": int("${gc_boot:-0}"), "gc0_after": int("${gc_warm:-0}"),
             "rss_before_kib": int("${rss_boot:-0}"), "rss_after_kib": int("${rss_warm:-0}")},
  "runs": {"plain": "${plain_runs[*]}".split(), "NTS": "${nts_runs[*]}".split()},
  "commands": ["""${cmd_plain//DUR/600}""", """${cmd_nts//DUR/600}""",
               "$LT ntske 127.0.0.1:$p_ke --name ntp.test --ca $W/server.crt --duration 100ms --concurrency 1 (every $handshake_every s)",
               "out/bin/appliance rotate-keys --socket $W/control.sock (every $rotate_every s)"],
}, open(sys.argv[1] + "/soak.json", "w"), indent=1)
PY
rc=0
python3 tests/Appliance.Benchmarks/soak_report.py "$out" || rc=$?
if [ "${SOAK_UPDATE_DOCS:-0}" = 1 ]; then
  python3 tests/Appliance.Benchmarks/soak_report.py splice docs/benchmarks.md "$out/soak.md"
  echo "soak.sh: docs/benchmarks.md: the Soak section replaced"
fi
exit $rc
