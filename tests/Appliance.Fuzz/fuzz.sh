#!/usr/bin/env bash
# `make fuzz`: coverage-guided fuzzing of every parser and protocol machine (docs/fuzzing.md).
# SharpFuzz instruments the appliance's assemblies; Debian's afl++ drives the driver in SharpFuzz's
# out-of-process mode. Each target runs until FUZZ_EXECS executions or FUZZ_SECONDS, whichever
# comes first, FUZZ_JOBS at a time, at the lowest CPU priority; then its queue is minimised back into
# tests/testdata/fuzz/TARGET (which `make test` replays) and docs/fuzzing.md gets its figures.
#   FUZZ_TARGETS="ntp nts"  the targets to run (default: all)
#   FUZZ_EXECS=10000000     executions per target (afl-fuzz -E)
#   FUZZ_SECONDS=3600       the most seconds per target (afl-fuzz -V)
#   FUZZ_JOBS=2             afl-fuzz processes at once (each takes one core)
#   FUZZ_INSTANCES=1        afl-fuzz processes per target (a main and secondaries sharing one queue,
#                           FUZZ_EXECS split between them): a slow target on every core
#   FUZZ_REUSE_BUILD=1      skip the publish and instrumentation when out/fuzz/bin has them
#   FUZZ_RESUME=1           go on with each target's last run (afl-fuzz -i -): its executions and run
#                           time carry on, so FUZZ_EXECS is the total (a run cut short by FUZZ_SECONDS)
#   FUZZ_SKIP_RUN=1         only minimise and report the last run of each target (out/fuzz/TARGET)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=$ROOT/out/fuzz
BIN=$OUT/bin
CORPUS=$ROOT/tests/testdata/fuzz
DOC=$ROOT/docs/fuzzing.md
# afl-cmin looks its target up as a file: dotnet by its absolute path.
DRIVER=("$(command -v dotnet)" "$BIN/Appliance.Fuzz.dll")
FUZZ_EXECS=${FUZZ_EXECS:-10000000}
FUZZ_SECONDS=${FUZZ_SECONDS:-3600}
FUZZ_JOBS=${FUZZ_JOBS:-2}
FUZZ_INSTANCES=${FUZZ_INSTANCES:-1}
((FUZZ_INSTANCES >= 1 && FUZZ_INSTANCES <= FUZZ_JOBS)) || { echo "fuzz: FUZZ_INSTANCES is 1 to FUZZ_JOBS ($FUZZ_JOBS)"; exit 2; }
((FUZZ_JOBS <= $(nproc))) || echo "fuzz: FUZZ_JOBS=$FUZZ_JOBS is more than the $(nproc) CPUs: jobs will share them, each slower"
# The builds share the machine: take the build lock for them when there is one (flock), never for fuzzing.
LOCK=${FUZZ_BUILD_LOCK:-/tmp/appliance.lock}
locked() { if command -v flock >/dev/null; then flock "$LOCK" "$@"; else "$@"; fi; }

if ! command -v afl-fuzz >/dev/null || ! command -v afl-cmin >/dev/null; then
  echo "fuzz: installing afl++ (apt)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends afl++ >/dev/null
fi

# Publish fresh (an assembly instrumented twice is refused), then instrument what the targets reach:
# the appliance's own assemblies and the YAML parser the configuration loader runs on.
# FUZZ_REUSE_BUILD=1 takes the instrumented driver already in out/fuzz/bin (to rerun or resume).
if [[ ${FUZZ_REUSE_BUILD:-0} != 1 || ! -f $BIN/Appliance.Fuzz.dll ]]; then
  rm -rf "$BIN"
  # PublishAot=false: the server project asks for Native AOT, which a JIT driver cannot reference.
  locked dotnet publish tests/Appliance.Fuzz -c Release -o "$BIN" -p:PublishAot=false --nologo -v quiet -clp:NoSummary
  (cd tests/Appliance.Fuzz && dotnet tool restore >/dev/null)
  for assembly in Appliance.Protocol.dll Appliance.Sources.dll appliance.dll YamlDotNet.dll; do
    (cd tests/Appliance.Fuzz && dotnet tool run sharpfuzz "$BIN/$assembly" >/dev/null)
  done
  echo "fuzz: instrumented Appliance.Protocol, Appliance.Sources, appliance (Appliance.Server) and YamlDotNet in $BIN"
fi

ALL=$("${DRIVER[@]}" 2>&1 | sed -n 's/^targets: //p' || true)
TARGETS=${FUZZ_TARGETS:-$ALL}
for t in $TARGETS; do
  [[ " $ALL " == *" $t "* ]] || { echo "fuzz: no target '$t' (targets: $ALL)"; exit 2; }
  [[ -n $(ls -A "$CORPUS/$t" 2>/dev/null) ]] || { echo "fuzz: no seeds in $CORPUS/$t"; exit 2; }
done

# AFL_NO_AFFINITY: the job's CPU is set with taskset below, for afl-fuzz and its children alike.
export AFL_SKIP_BIN_CHECK=1 AFL_NO_AFFINITY=1 AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
  AFL_FORKSRV_INIT_TMOUT=60000 AFL_SHUFFLE_QUEUE=0 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

# Each job runs on a CPU of its own (slot k of FUZZ_JOBS on CPU k mod the CPUs): afl-fuzz, SharpFuzz's
# runner and the target hand every execution to each other over pipes, and on one CPU those hand-offs
# are plain context switches; spread over two they are cross-CPU wake-ups, which made a job 2-3x
# slower here (7,000 executions/s unpinned against 22,000 pinned, ntske-client on this 2-vCPU VM).
fuzz_one() {
  local t=$1 i input=$CORPUS/$1
  local command="FUZZ_TARGETS=$t FUZZ_EXECS=$FUZZ_EXECS FUZZ_SECONDS=$FUZZ_SECONDS$( ((FUZZ_INSTANCES == 1)) || echo " FUZZ_JOBS=$FUZZ_JOBS FUZZ_INSTANCES=$FUZZ_INSTANCES") make fuzz"
  if [[ ${FUZZ_RESUME:-0} == 1 && -d $OUT/$t/afl ]]; then
    input=- # afl-fuzz resumes from its own queue and statistics
    rm -f "$OUT/$t/ended"
    echo "$(cat "$OUT/$t/command" 2>/dev/null || echo "$command"), resumed with FUZZ_RESUME=1 $command" >"$OUT/$t/command.new"
    mv "$OUT/$t/command.new" "$OUT/$t/command"
  else
    rm -rf "$OUT/$t"
    mkdir -p "$OUT/$t"
    date +%s >"$OUT/$t/started"
    # What reproduces this target's row (docs/fuzzing.md), whichever targets ran beside it.
    echo "$command" >"$OUT/$t/command"
  fi
  for ((i = 0; i < FUZZ_INSTANCES; i++)); do fuzz_instance "$t" "$i" "$input" & done
  wait
  date +%s >"$OUT/$t/ended"
}

fuzz_instance() { # TARGET INDEX INPUT: one afl-fuzz process, in a free slot
  local t=$1 i=$2 input=$3 k fd role=()
  ((FUZZ_INSTANCES == 1)) || { ((i == 0)) && role=(-M main) || role=(-S "s$i"); }
  for ((k = 0; ; k = (k + 1) % FUZZ_JOBS)); do
    exec {fd}>"$OUT/.slot-$k"
    flock -n "$fd" && break
    exec {fd}>&-
    sleep 0.2
  done
  taskset -c "$((k % $(nproc)))" nice -n 19 afl-fuzz -i "$input" -o "$OUT/$t/afl" "${role[@]}" -t 5000 -m none -E "$((FUZZ_EXECS / FUZZ_INSTANCES))" -V "$FUZZ_SECONDS" \
    -- "${DRIVER[@]}" "$t" >"$OUT/$t/afl-$i.log" 2>&1 || echo "fuzz: afl-fuzz $i for $t exited with $? (see $OUT/$t/afl-$i.log)"
}

# A figure of a target's run: summed over its instances (executions, rate, crashes, hangs), or the
# largest (paths: the instances share their finds; run time: they run side by side).
stat_of() {
  cat "$OUT/$1"/afl/*/fuzzer_stats 2>/dev/null | awk -v key="$2" '$1 == key { v = $3 + 0; sum += v; if (v > max) max = v; n++ }
    END { if (!n) exit; if (key == "corpus_count" || key == "run_time") print max; else if (key == "execs_per_sec") printf "%.2f\n", sum; else print sum }' || true
}

progress() {
  while sleep 60; do
    local line=""
    for t in $TARGETS; do
      [[ -f $OUT/$t/started && ! -f $OUT/$t/ended ]] || continue
      line+="  $t: $(stat_of "$t" execs_done) execs, $(stat_of "$t" execs_per_sec)/s, $(stat_of "$t" corpus_count) paths, $(stat_of "$t" saved_crashes) crashes"
    done
    [[ -n $line ]] && echo "fuzz: $(date -u +%H:%M:%S)$line"
  done
}

if [[ ${FUZZ_SKIP_RUN:-0} != 1 ]]; then
  echo "fuzz: targets: $TARGETS; $FUZZ_EXECS executions or $FUZZ_SECONDS s each, $FUZZ_JOBS at a time"
  progress &
  PROGRESS=$!
  trap 'kill $PROGRESS 2>/dev/null || true' EXIT
  for t in $TARGETS; do
    while (($(jobs -rp | wc -l) > FUZZ_JOBS / FUZZ_INSTANCES)); do wait -n || true; done # the progress loop is one of the jobs
    echo "fuzz: $t started"
    fuzz_one "$t" &
  done
  while (($(jobs -rp | wc -l) > 1)); do wait -n || true; done
fi

# Minimise each queue (with the seeds) into the corpus: afl-cmin keeps the smallest inputs that
# together reach every edge seen. Seeds and findings (crash-*, hang-*) stay; the rest is replaced.
findings=0
HOST="$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) vCPU, Linux $(uname -r)"
for t in $TARGETS; do
  # Each instance's directory: afl/default alone, afl/main and afl/sN with FUZZ_INSTANCES.
  dirs=("$OUT/$t"/afl/*/)
  [[ -n $(stat_of "$t" execs_done) ]] || { echo "fuzz: $t has no fuzzer_stats (see $OUT/$t/afl-*.log)"; findings=1; continue; }
  for dir in "${dirs[@]}"; do
    for found in crash:crashes hang:hangs; do
      for f in "$dir/${found#*:}"/id*; do
        [[ -f $f ]] || continue
        cp "$f" "$CORPUS/$t/${found%%:*}-$(sha1sum "$f" | cut -c1-12)"
        findings=1
      done
    done
  done
  rm -rf "$OUT/$t/queue+seeds" "$OUT/$t/cmin"
  mkdir -p "$OUT/$t/queue+seeds"
  for dir in "${dirs[@]}"; do
    for f in "$dir"/queue/id*; do [[ -f $f ]] && cp "$f" "$OUT/$t/queue+seeds/$(sha1sum "$f" | cut -c1-12)"; done
  done
  cp "$CORPUS/$t"/seed-* "$OUT/$t/queue+seeds/" 2>/dev/null || true
  # Inputs past 4 KiB add time to every replay and rarely coverage: left out.
  find "$OUT/$t/queue+seeds" -type f -size +4k -delete
  if nice -n 19 afl-cmin -i "$OUT/$t/queue+seeds" -o "$OUT/$t/cmin" -t 5000 -m none -- "${DRIVER[@]}" "$t" >"$OUT/$t/cmin.log" 2>&1; then
    find "$CORPUS/$t" -type f -name 'cov-*' -delete
    for f in "$OUT/$t/cmin"/*; do
      [[ -f $f ]] || continue
      name=$(basename "$f")
      [[ $name == seed-* ]] && continue # already there under its own name
      cp "$f" "$CORPUS/$t/cov-$(sha1sum "$f" | cut -c1-12)"
    done
    # A queue entry equal to a seed is the seed.
    for s in "$CORPUS/$t"/seed-*; do
      for c in "$CORPUS/$t"/cov-*; do [[ -f $c ]] && cmp -s "$s" "$c" && rm -f "$c"; done
    done
  else
    echo "fuzz: afl-cmin failed for $t (see $OUT/$t/cmin.log); the corpus is left as it was"
  fi
  started=$(cat "$OUT/$t/started")
  # A run of an older fuzz.sh left no command: its figures came from the same variables.
  command=$(cat "$OUT/$t/command" 2>/dev/null || echo "FUZZ_TARGETS=$t FUZZ_EXECS=$FUZZ_EXECS FUZZ_SECONDS=$FUZZ_SECONDS make fuzz")
  printf '| `%s` | %s | %s | %s | %s | %s | %s | %s | %s: `%s` |\n' "$t" "$(stat_of "$t" execs_done)" "$(stat_of "$t" execs_per_sec)" \
    "$(stat_of "$t" run_time)" "$(stat_of "$t" corpus_count)" "$(stat_of "$t" saved_crashes)" "$(stat_of "$t" saved_hangs)" \
    "$(ls "$CORPUS/$t" | wc -l)" "$(date -u -d "@$started" +%Y-%m-%d)" "$command" >"$OUT/$t/row"
  echo "fuzz: $t: $(cat "$OUT/$t/row")"
done

# docs/fuzzing.md: each target's row replaced by this run's (targets not run keep theirs).
if [[ -f $DOC ]]; then
  for t in $TARGETS; do
    [[ -f $OUT/$t/row ]] || continue
    # Only the results table, after the marker: the targets table above it has a row per target too.
    awk -v t="$t" -v row="$(cat "$OUT/$t/row")" '/^<!-- fuzz-run -->/ { results = 1 } results && index($0, "| `" t "` |") == 1 { print row; found = 1; next } { print } END { if (!found) exit 1 }' \
      "$DOC" >"$DOC.new" || { echo "fuzz: no row for $t in $DOC: add one to its results table"; rm -f "$DOC.new"; continue; }
    mv "$DOC.new" "$DOC"
  done
  awk -v host="$HOST" '/^<!-- fuzz-run -->/ { print; getline; print "Each row is its target'"'"'s last run, on " host ", with the command that reproduces it."; next } { print }' \
    "$DOC" >"$DOC.new" && mv "$DOC.new" "$DOC"
  echo "fuzz: $DOC updated"
fi
if ((findings)); then
  echo "fuzz: FINDINGS: crashes or hangs were kept in tests/testdata/fuzz/<target>/crash-* and hang-*; reproduce with"
  echo "      dotnet $BIN/Appliance.Fuzz.dll TARGET < FILE"
  exit 1
fi
echo "fuzz: no crashes, no hangs"
