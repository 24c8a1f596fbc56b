"""Tests of soak_report.py: the slope, the counters' differences and the pass/fail rules of `make soak`.

`make test` runs them (/usr/bin/python3 -m pytest tests/Appliance.Benchmarks); by hand, also:
python3 -m unittest discover -s tests/Appliance.Benchmarks -p 'test_soak*.py'
"""
import contextlib
import io
import os
import sys
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(__file__))
import soak_report as r  # noqa: E402


def scrape(requests, worker_alloc=0, naks=0, restarts=0, rotations=0, ok=0):
    return r.parse_metrics(f"""# HELP appliance_ntp_requests_total NTP datagrams received.
# TYPE appliance_ntp_requests_total counter
appliance_ntp_requests_total {requests}
appliance_ntp_worker_allocated_bytes_total {worker_alloc}
appliance_process_allocated_bytes_total {worker_alloc + 1000}
appliance_ntp_responses_total{{kind="respond",reason="served"}} {requests - naks}
appliance_ntp_responses_total{{kind="kod",reason="nts_cookie_unknown_key"}} {naks}
appliance_ntp_responses_total{{kind="kod",reason="rate_limited"}} 7
appliance_nts_requests_total{{kind="respond",reason="served"}} {requests // 2}
appliance_ntp_worker_restarts_total {restarts}
appliance_nts_key_rotations_total {rotations}
appliance_ntske_handshakes_total{{result="ok",reason="ok"}} {ok}
appliance_ntske_handshakes_total{{result="closed",reason="tls"}} 1
dotnet_collection_count_total{{generation="2"}} 3
process_cpu_seconds_total 12.5
""")


def generator(naks=0):
    steps = [{"Sent": 1000, "Answered": 990, "Valid": 990, "Invalid": 0, "Kod": naks, "KodCodes": {"NTSN": naks} if naks else {},
              "DurationSeconds": 10.0, "LossPercent": 1.0, "Extra": {}},
             {"Sent": 1000, "Answered": 1000, "Valid": 1000, "Invalid": 0, "Kod": 0, "KodCodes": {},
              "DurationSeconds": 10.0, "LossPercent": 0.0, "Extra": {}}]
    return r.generator_figures(steps)


class SlopeTests(unittest.TestCase):
    def test_least_squares_ExactLine_GivesSlopeAndZeroError(self):
        slope, intercept, se = r.least_squares([(0, 5), (10, 25), (20, 45), (30, 65)])
        self.assertAlmostEqual(slope, 2.0)
        self.assertAlmostEqual(intercept, 5.0)
        self.assertAlmostEqual(se, 0.0)

    def test_least_squares_NoisyFlat_ErrorCoversZero(self):
        slope, _, se = r.least_squares([(0, 100), (10, 102), (20, 98), (30, 101), (40, 99)])
        self.assertLess(abs(slope), 2 * se)
        self.assertGreater(se, 0)

    def test_least_squares_TooFewSamples_Refused(self):
        with self.assertRaises(ValueError):
            r.least_squares([(0, 1), (1, 2)])

    def test_rss_figures_SlopeLeavesTheWarmupOut_InKibPerHour(self):
        # A jump during the warm-up, then 1 KiB per 10 s: 360 KiB/h, whatever the warm-up did.
        samples = [(0, 1000), (10, 5000), (20, 9000)] + [(t, 20000 + (t - 30) / 10) for t in range(30, 300, 10)]
        f = r.rss_figures(samples, 30)
        self.assertAlmostEqual(f["slope_kib_per_hour"], 360.0)
        self.assertEqual(f["first_kib"], 1000)
        self.assertEqual(f["max_kib"], max(s[1] for s in samples))
        self.assertEqual(f["samples_after_warmup"], 27)


class CounterTests(unittest.TestCase):
    def test_server_figures_DifferencesBetweenScrapes(self):
        f = r.server_figures(scrape(1000, worker_alloc=6200, ok=3), scrape(5000, worker_alloc=6200, naks=4, rotations=2, ok=10))
        self.assertEqual(f["requests"], 4000)
        self.assertEqual(f["worker_allocated_bytes"], 0)
        self.assertEqual(f["naks"], 4)  # the rate_limited KoDs are not NAKs
        self.assertEqual(f["rotations"], 2)
        self.assertEqual(f["ntske_ok"], 7)
        self.assertEqual(f["ntske_not_ok"], 0)

    def test_parse_metrics_LabelsAndComments(self):
        s = r.parse_metrics('# TYPE x counter\nx{a="1",b="two words"} 3\nx{a="2"} 4e3\n')
        self.assertEqual(r.metric_sum(s, "x"), 4003)
        self.assertEqual(r.metric_sum(s, "x", b="two words"), 3)

    def test_generator_figures_SumsRuns(self):
        g = generator(naks=2)
        self.assertEqual(g["sent"], 2000)
        self.assertAlmostEqual(g["loss_percent"], 0.5)
        self.assertEqual(g["worst_run_loss_percent"], 1.0)
        self.assertEqual(g["kod_codes"], {"NTSN": 2})
        self.assertAlmostEqual(g["valid_rate"], 99.5)


class VerdictTests(unittest.TestCase):
    def checks(self, slope=100.0, start=None, end=None, nts=None, handshakes=None, rotations=1, alive=True):
        rss = {"slope_kib_per_hour": slope, "slope_se_kib_per_hour": 10.0}
        server = r.server_figures(start or scrape(1000), end or scrape(9000, rotations=1))
        gens = {"plain": generator(), "NTS": nts or generator()}
        return {t: ok for t, _, ok in r.verdict(rss, server, gens, handshakes or {"ok": 5, "failed": 0}, rotations, 512, alive)}

    def test_verdict_AllGood_Passes(self):
        self.assertTrue(all(self.checks().values()))

    def test_verdict_EachFailure_FailsItsTarget(self):
        cases = {
            "RSS slope after the warm-up ≤ 512 KiB/h": dict(slope=600.0),
            "0 B allocated by the NTP workers": dict(end=scrape(9000, worker_alloc=8, rotations=1)),
            "0 NTS NAKs": dict(end=scrape(9000, naks=1, rotations=1)),
            "0 worker restarts": dict(end=scrape(9000, restarts=1, rotations=1)),
            "≥ 1 key rotation during the load": dict(rotations=0),
            "every NTS-KE handshake succeeded": dict(handshakes={"ok": 5, "failed": 1}),
            "the appliance ran to the end": dict(alive=False),
        }
        for target, change in cases.items():
            with self.subTest(target):
                checks = self.checks(**change)
                self.assertFalse(checks[target])
                self.assertTrue(all(ok for t, ok in checks.items() if t != target), checks)

    def test_verdict_NakSeenOnlyByTheClient_Fails(self):
        self.assertFalse(self.checks(nts=generator(naks=1))["0 NTS NAKs"])

    def test_verdict_RotationTheServerDidNotCount_Fails(self):
        self.assertFalse(self.checks(end=scrape(9000, rotations=0))["≥ 1 key rotation during the load"])

    def test_verdict_NoRequests_FailsTheAllocationTarget(self):
        self.assertFalse(self.checks(end=scrape(1000, rotations=1))["0 B allocated by the NTP workers"])

    def test_verdict_NoHandshakeAtAll_Fails(self):
        self.assertFalse(self.checks(handshakes={"ok": 0, "failed": 0})["every NTS-KE handshake succeeded"])


class ReportTests(unittest.TestCase):
    def test_every_PicksOnePerStepAndTheLast(self):
        samples = [(t, t) for t in range(0, 125, 10)]
        self.assertEqual([t for t, _ in r.every(samples, 60)], [0, 60, 120])
        self.assertEqual([t for t, _ in r.every(samples[:-1], 60)], [0, 60, 110])

    def test_duration_text(self):
        self.assertEqual(r.duration_text(1200), "20 min")
        self.assertEqual(r.duration_text(100), "100 s")

    def test_main_FilesOfARun_WritesSectionAndVerdict(self):
        import json
        import tempfile
        with tempfile.TemporaryDirectory() as out:
            def write(name, text):
                r.write(f"{out}/{name}", text)
            step = {"Sent": 100, "Answered": 100, "Valid": 100, "Invalid": 0, "Kod": 0, "KodCodes": {}, "DurationSeconds": 1.0,
                    "LossPercent": 0.0, "Extra": {}}
            write("plain-1.json", json.dumps({"Steps": [step]}))
            write("nts-1.json", json.dumps({"Steps": [step]}))
            write("rss.tsv", "".join(f"{t} 40000\n" for t in range(0, 400, 10)))
            write("handshakes.tsv", "0 1 0\n5 1 0\n")
            write("rotations.tsv", "100 ok rotated: current key id 7, 2 keys open cookies\n")
            for name, n, rot in (("metrics-start.txt", 10, 0), ("metrics-end.txt", 210, 1)):
                write(name, f"appliance_ntp_requests_total {n}\nappliance_ntp_worker_allocated_bytes_total 6200\n"
                            f"appliance_nts_key_rotations_total {rot}\n")
            info = {"minutes": 6.5, "warmup_seconds": 30, "rss_slope_max": "", "handshake_every": 5, "rotate_every": 100,
                    "rotations_forced": 1, "alive": True, "server_cpu": 1, "generator_cpu": 0, "started": "s", "finished": "f",
                    "host": "h", "command": "c", "note": "", "rate_text": "r",
                    "warmup": {"handshakes": 9, "gc0_before": 1, "gc0_after": 4, "rss_before_kib": 30000, "rss_after_kib": 40000},
                    "runs": {"plain": [f"{out}/plain-1.json"], "NTS": [f"{out}/nts-1.json"]}, "commands": ["x"]}
            write("soak.json", json.dumps(info))
            with contextlib.redirect_stdout(io.StringIO()):
                self.assertEqual(r.main(out), 0)
            section = r.read(f"{out}/soak.md")
            self.assertTrue(section.startswith("## Soak\n"))
            self.assertIn("| 0 B allocated by the NTP workers | 0 B over 200 requests", section)
            self.assertIn("100 ok rotated: current key id 7", section)
            self.assertIn("3 gen-0 collections", section)
            self.assertIn("PASS", r.read(f"{out}/verdict.txt"))


class SpliceTests(unittest.TestCase):
    def test_splice_ReplacesTheSoakSectionOnly(self):
        doc = "# B\n\n## Memory\n\nm\n\n## Soak\n\nold\n\n## After\n\na\n"
        out = r.splice(doc, "## Soak\n\nnew\n")
        self.assertIn("## Memory\n\nm\n", out)
        self.assertIn("## After\n\na", out)
        self.assertNotIn("old", out)
        self.assertTrue(out.endswith("## Soak\n\nnew\n"))

    def test_splice_NoSoakSection_Appends(self):
        self.assertEqual(r.splice("# B\n\n## Memory\n\nm\n", "## Soak\n\nx\n"), "# B\n\n## Memory\n\nm\n\n## Soak\n\nx\n")


if __name__ == "__main__":
    unittest.main()
