#!/usr/bin/env python3
"""The arithmetic and the verdict of `make soak` (soak.sh), and the "## Soak" section it writes.

soak.sh collects; this file decides. Kept apart so that the slope and the pass/fail rules have tests
(test_soak_report.py: `python3 -m unittest discover -s tests/Appliance.Benchmarks -p 'test_soak*.py'`).

Usage: soak_report.py OUT  (reads OUT/soak.json and the files it names; writes OUT/soak.md and
OUT/verdict.txt; exits 1 when a target fails)
"""
import json
import math
import re
import sys

# What "flat" means: a least-squares slope of VmRSS after the warm-up no steeper than this. One leaked
# byte per request would be ~180 MiB/h at the soak's rates, one leaked kilobyte per NTS-KE handshake
# ~700 KiB/h at one handshake every 5 s; the bound sits below the second.
DEFAULT_RSS_SLOPE_MAX_KIB_PER_HOUR = 512.0


def read(path):
    with open(path) as f:
        return f.read()


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def least_squares(points):
    """(slope, intercept, standard error of the slope) of y on x over [(x, y), ...]."""
    n = len(points)
    if n < 3:
        raise ValueError(f"a slope needs at least 3 samples, got {n}")
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        raise ValueError("every sample has the same time")
    sxy = sum((x - mx) * (y - my) for x, y in points)
    slope = sxy / sxx
    intercept = my - slope * mx
    residual = sum((y - (intercept + slope * x)) ** 2 for x, y in points)
    se = math.sqrt(residual / (n - 2) / sxx)
    return slope, intercept, se


def rss_figures(samples, warmup_seconds):
    """samples: [(seconds since the load started, VmRSS KiB)]. The slope is in KiB per hour, after the warm-up."""
    if not samples:
        raise ValueError("no RSS samples")
    after = [(t, r) for t, r in samples if t >= warmup_seconds]
    slope, _, se = least_squares(after)
    rss = [r for _, r in samples]
    return {
        "first_kib": rss[0], "last_kib": rss[-1], "max_kib": max(rss),
        "after_warmup_first_kib": after[0][1], "samples": len(samples), "samples_after_warmup": len(after),
        "slope_kib_per_hour": slope * 3600, "slope_se_kib_per_hour": se * 3600,
    }


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Prometheus text format to [(name, {label: value}, float)]."""
    series = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m:
            labels = dict(_LABEL.findall(m.group(2) or ""))
            series.append((m.group(1), labels, float(m.group(3))))
    return series


def metric_sum(series, name, **match):
    """Sum of NAME's samples whose labels match; a regex value (re.Pattern) matches by fullmatch."""
    total = 0.0
    for n, labels, value in series:
        if n != name:
            continue
        if all((v.fullmatch(labels.get(k, "")) if isinstance(v, re.Pattern) else labels.get(k) == v) for k, v in match.items()):
            total += value
    return total


NAK = re.compile(r"nts_cookie_.*")  # RFC 8915 §5.7: the cookie did not open, the server sends a NAK (KoD NTSN)


def server_figures(start, end):
    """Differences of the counters between the start and end scrapes (parsed)."""
    def d(name, **match):
        return metric_sum(end, name, **match) - metric_sum(start, name, **match)
    return {
        "requests": d("appliance_ntp_requests_total"),
        "worker_allocated_bytes": d("appliance_ntp_worker_allocated_bytes_total"),
        "process_allocated_bytes": d("appliance_process_allocated_bytes_total"),
        "naks": d("appliance_ntp_responses_total", kind="kod", reason=NAK),
        "nts_served": d("appliance_nts_requests_total", kind="respond"),
        "nts_dropped": d("appliance_nts_requests_total", kind="drop"),
        "served": d("appliance_ntp_responses_total", kind="respond", reason="served"),
        "drops": d("appliance_ntp_drops_total"),
        "send_errors": d("appliance_ntp_send_errors_total"),
        "worker_restarts": d("appliance_ntp_worker_restarts_total"),
        "worker_restarts_total": metric_sum(end, "appliance_ntp_worker_restarts_total"),
        "rotations": d("appliance_nts_key_rotations_total"),
        "ntske_ok": d("appliance_ntske_handshakes_total", result="ok"),
        "ntske_not_ok": d("appliance_ntske_handshakes_total") - d("appliance_ntske_handshakes_total", result="ok"),
        "gc_gen0": d("dotnet_collection_count_total", generation="0"),
        "gc_gen2": d("dotnet_collection_count_total", generation="2"),
        "cpu_seconds": d("process_cpu_seconds_total"),
    }


def generator_figures(steps):
    """One generator's `run` results (the JSON Steps, one per back-to-back run) summed."""
    sent = sum(s["Sent"] for s in steps)
    valid = sum(s["Valid"] for s in steps)
    answered = sum(s["Answered"] for s in steps)
    kod = {}
    for s in steps:
        for code, n in s.get("KodCodes", {}).items():
            kod[code] = kod.get(code, 0) + n
    extra = {}
    for s in steps:
        for k, n in s.get("Extra", {}).items():
            extra[k] = extra.get(k, 0) + n
    seconds = sum(s["DurationSeconds"] for s in steps)
    return {
        "runs": len(steps), "seconds": seconds, "sent": sent, "answered": answered, "valid": valid,
        "invalid": sum(s["Invalid"] for s in steps), "kod": sum(s["Kod"] for s in steps), "kod_codes": kod,
        "loss_percent": 100.0 * (sent - answered) / sent if sent else float("nan"),
        "worst_run_loss_percent": max((s["LossPercent"] for s in steps), default=float("nan")),
        "valid_rate": valid / seconds if seconds else 0.0, "extra": extra,
    }


def verdict(rss, server, generators, handshakes, rotations_forced, slope_max, alive):
    """[(target, measured text, passed)] for every target; the soak passes when all do."""
    naks_seen_by_clients = sum(g["kod_codes"].get("NTSN", 0) for g in generators.values())
    per_request = server["worker_allocated_bytes"] / server["requests"] if server["requests"] else float("nan")
    return [
        ("the appliance ran to the end", "yes" if alive else "no: it exited during the soak", alive),
        (f"RSS slope after the warm-up ≤ {slope_max:.0f} KiB/h",
         f"{rss['slope_kib_per_hour']:.0f} ± {rss['slope_se_kib_per_hour']:.0f} KiB/h", rss["slope_kib_per_hour"] <= slope_max),
        ("0 B allocated by the NTP workers",
         f"{server['worker_allocated_bytes']:.0f} B over {server['requests']:.0f} requests ({per_request:.4f} B/request)",
         server["worker_allocated_bytes"] == 0 and server["requests"] > 0),
        ("0 NTS NAKs", f"{server['naks']:.0f} sent by the server, {naks_seen_by_clients} seen by the NTS generator",
         server["naks"] == 0 and naks_seen_by_clients == 0),
        ("0 worker restarts", f"{server['worker_restarts']:.0f}", server["worker_restarts"] == 0),
        ("≥ 1 key rotation during the load", f"{rotations_forced} forced (`appliance rotate-keys`), {server['rotations']:.0f} counted by the server",
         rotations_forced >= 1 and server["rotations"] >= rotations_forced),
        ("every NTS-KE handshake succeeded", f"{handshakes['ok']} ok, {handshakes['failed']} failed",
         handshakes["ok"] > 0 and handshakes["failed"] == 0),
    ]


def duration_text(seconds):
    return f"{seconds / 60:g} min" if seconds % 60 == 0 else f"{seconds:g} s"


def every(samples, step_seconds):
    """The samples nearest to 0, STEP, 2 STEP, ... seconds, and the last one."""
    if not samples:
        return []
    picked, next_t = [], 0.0
    for t, v in samples:
        if t >= next_t:
            picked.append((t, v))
            next_t = (t // step_seconds + 1) * step_seconds
    if picked[-1] != samples[-1]:
        picked.append(samples[-1])
    return picked


def warmup_text(w):
    """What the heap's warm-up did (soak.sh: why it is there)."""
    if not w:
        return "No heap warm-up."
    return (f"Heap warm-up before the measured window: {w['handshakes']} NTS-KE handshakes in 20 s took the managed heap through "
            f"{w['gc0_after'] - w['gc0_before']} gen-0 collections and RSS from {w['rss_before_kib'] / 1024:.1f} to {w['rss_after_kib'] / 1024:.1f} MiB. "
            "Without it, the workstation GC first collects after ~16 MB of allocation (NTS-KE and scrapes allocate ~8 kB "
            "per handshake; the workers nothing), most of an hour at the soak's handshake rate, and RSS climbs "
            "meanwhile to the plateau it then holds: the slope would measure the first use of the gen-0 budget, not growth.")


def section(info, rss, server, generators, handshakes, checks):
    mins = info["minutes"]
    lines = ["## Soak\n",
             f"Written by `{info['command']}` on {info['finished']} UTC, host: {info['host']}.",
             f"Duration **{mins:g} min** of load ({info['started']} to {info['finished']} UTC). {info['note']}".rstrip(),
             "",
             f"The Native AOT appliance (`out/bin/appliance`: NTP, NTS-KE with a certificate openssl made for the run,",
             "the control socket, metrics, `clock.mode: software`, one NTP worker, `rate-limit: off`) pinned to",
             f"CPU {info['server_cpu']}; on CPU {info['generator_cpu']} two `appliance-loadtest run` generators side by side, plain NTP and",
             f"NTS, each in back-to-back runs of at most 10 min; an NTS-KE handshake every {info['handshake_every']} s",
             f"(`appliance-loadtest ntske`, beside the generators' own 16 per run) and `appliance rotate-keys` every {duration_text(info['rotate_every'])}.",
             f"VmRSS sampled every 10 s; the counters are the differences between a scrape of /metrics after the",
             "capacity probe and the heap's warm-up and one at the end.",
             "",
             warmup_text(info.get("warmup")),
             "",
             f"Offered load: {info['rate_text']}",
             "",
             "| target | measured | passed |",
             "| --- | --- | --- |"]
    lines += [f"| {t} | {m} | {'yes' if ok else '**NO**'} |" for t, m, ok in checks]
    lines += ["",
              "| figure | value |",
              "| --- | --- |",
              f"| RSS first / last / max | {rss['first_kib'] / 1024:.1f} / {rss['last_kib'] / 1024:.1f} / {rss['max_kib'] / 1024:.1f} MiB ({rss['samples']} samples) |",
              f"| RSS every {duration_text(info['rss_every'])} (MiB at s) | {', '.join(f'{v / 1024:.2f} at {t:.0f}' for t, v in every(info['rss_samples'], info['rss_every']))} |",
              f"| rotations (s after the start: answer) | {'; '.join(info['rotation_lines']) or 'none'} |",
              f"| RSS slope (least squares, after a {info['warmup_seconds']:.0f} s warm-up, {rss['samples_after_warmup']} samples) | {rss['slope_kib_per_hour']:.0f} KiB/h (standard error {rss['slope_se_kib_per_hour']:.0f}) |",
              f"| requests received by the server | {server['requests']:.0f} ({server['served']:.0f} served, of which {server['nts_served']:.0f} NTS; {server['drops']:.0f} dropped, {server['send_errors']:.0f} send errors) |",
              f"| bytes allocated: NTP workers / whole process | {server['worker_allocated_bytes']:.0f} B / {server['process_allocated_bytes']:.0f} B ({server['process_allocated_bytes'] / max(server['requests'], 1):.3f} B per request: TLS handshakes, scrapes, control verbs) |",
              f"| gen-0 / gen-2 collections | {server['gc_gen0']:.0f} / {server['gc_gen2']:.0f} |",
              f"| server CPU per request (process user + system) | {server['cpu_seconds'] * 1e6 / max(server['requests'], 1):.2f} µs |",
              f"| NTS-KE handshakes (server's count, all clients) | {server['ntske_ok']:.0f} ok, {server['ntske_not_ok']:.0f} not ok |",
              f"| worker restarts since start | {server['worker_restarts_total']:.0f} |"]
    for name, g in generators.items():
        lines.append(f"| {name} generator: sent / answered / valid (runs) | {g['sent']} / {g['answered']} / {g['valid']} ({g['runs']} runs, {g['valid_rate']:.0f} valid/s) |")
        lines.append(f"| {name} generator: loss (whole soak; worst run), invalid, KoD | {g['loss_percent']:.3f} % ({g['worst_run_loss_percent']:.3f} %), {g['invalid']}, {g['kod']} {json.dumps(g['kod_codes']) if g['kod_codes'] else ''} |")
    sent = sum(g["sent"] for g in generators.values())
    answered = sum(g["answered"] for g in generators.values())
    lost = sent - server["requests"]
    lines.append(f"| sent by the generators − received by the server | {lost:.0f} ({100.0 * lost / max(sent, 1):.3f} % of {sent}; the server answered "
                 f"{'every request it received' if server['drops'] == 0 and server['served'] == server['requests'] else 'not every request it received'}, "
                 f"the generators counted {answered} answers) |")
    if info.get("udp_rcvbuf_errors") is not None:
        lines.append(f"| UDP receive-queue overflows, host-wide (`RcvbufErrors`, /proc/net/snmp) | {info['udp_rcvbuf_errors']} |")
    lines += ["",
              "Loss is not a target here: the machine is shared, and a stall of the host's vCPU drops what arrives",
              "meanwhile. The targets are what would grow or break over hours: memory, allocation, cookies that stop",
              "opening after a rotation, workers that fail.",
              "",
              "Commands:",
              ""]
    lines += [f"- `{c}`" for c in info["commands"]]
    return "\n".join(lines) + "\n"


def main(out):
    info = json.loads(read(f"{out}/soak.json"))
    samples = [tuple(float(x) for x in l.split()) for l in read(f"{out}/rss.tsv").splitlines() if l.strip()]
    rss = rss_figures(samples, info["warmup_seconds"])
    info["rss_samples"] = samples
    info["rss_every"] = 300 if info["minutes"] >= 20 else 60
    try:
        info["rotation_lines"] = [l.strip() for l in read(f"{out}/rotations.tsv").splitlines() if l.strip()]
    except FileNotFoundError:
        info["rotation_lines"] = []
    start = parse_metrics(read(f"{out}/metrics-start.txt"))
    end = parse_metrics(read(f"{out}/metrics-end.txt"))
    server = server_figures(start, end)
    generators = {}
    for name in ("plain", "NTS"):
        steps = []
        for f in info["runs"][name]:
            steps += json.loads(read(f))["Steps"]
        generators[name] = generator_figures(steps)
    hs = [l.split() for l in read(f"{out}/handshakes.tsv").splitlines() if l.strip()]
    handshakes = {"ok": sum(int(h[1]) for h in hs), "failed": sum(int(h[2]) for h in hs)}
    slope_max = float(info.get("rss_slope_max") or DEFAULT_RSS_SLOPE_MAX_KIB_PER_HOUR)
    checks = verdict(rss, server, generators, handshakes, info["rotations_forced"], slope_max, info["alive"])
    write(f"{out}/soak.md", section(info, rss, server, generators, handshakes, checks))
    text = "\n".join(f"{'PASS' if ok else 'FAIL'}  {t}: {m}" for t, m, ok in checks)
    write(f"{out}/verdict.txt", text + "\n")
    print(text)
    return 0 if all(ok for _, _, ok in checks) else 1


def splice(doc, section_text):
    """DOC with its "## Soak" section replaced by SECTION_TEXT (or SECTION_TEXT appended)."""
    doc = re.sub(r"\n## Soak\n.*?(?=\n## |\Z)", "", doc, flags=re.S).rstrip("\n")
    return doc + "\n\n" + section_text


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "splice":
        path, section_file = sys.argv[2], sys.argv[3]
        write(path, splice(read(path), read(section_file)))
        sys.exit(0)
    sys.exit(main(sys.argv[1]))
