"""The Python client against a real Detour server, started here on a free
loopback port over a private copy of the repository's models.

Needs the server binary (`DETOUR_BIN`, default `target/debug/detour` of the
checkout) and, for the bring-your-own-model test, `detour-train`
(`DETOUR_TRAIN_BIN`). `clients/python/run-tests` builds both and runs this.
"""

import csv
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

import grpc

from detour_client import Client, DetourError

ROOT = Path(__file__).resolve().parents[3]
SERVER = Path(os.environ.get("DETOUR_BIN", ROOT / "target" / "debug" / "detour"))
TRAINER = Path(os.environ.get("DETOUR_TRAIN_BIN", ROOT / "target" / "debug" / "detour-train"))
FIXTURES = ROOT / "training" / "tests" / "fixtures" / "byom"
TOKEN = "python-client-test-token-0123"

LEG = {
    "shipment_id": "PY-1",
    "carrier": "UPS",
    "origin": "ATL",
    "destination": "JFK",
    "scheduled_departure": "2026-11-24T08:00:00Z",
    "scheduled_arrival": "2026-11-25T11:00:00Z",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ClientAgainstServer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.scratch = Path(tempfile.mkdtemp(prefix="detour-pyclient-"))
        models = cls.scratch / "models"
        shutil.copytree(ROOT / "models", models)
        cls.address = f"127.0.0.1:{free_port()}"
        env = dict(os.environ, DETOUR_ADMIN_TOKEN=TOKEN, DETOUR_MODELS=str(models))
        cls.log = open(cls.scratch / "server.log", "w")
        cls.server = subprocess.Popen(
            [str(SERVER), "serve", "--listen", cls.address],
            env=env,
            stdout=cls.log,
            stderr=subprocess.STDOUT,
        )
        channel = grpc.insecure_channel(cls.address)
        try:
            grpc.channel_ready_future(channel).result(timeout=30)
        except grpc.FutureTimeoutError:
            cls.server.kill()
            raise RuntimeError((cls.scratch / "server.log").read_text())
        channel.close()
        cls.client = Client(cls.address, admin_token=TOKEN, user="pytest")

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.terminate()
        cls.server.wait(timeout=30)
        cls.log.close()
        shutil.rmtree(cls.scratch, ignore_errors=True)

    def test_score_shipment_explains_its_answer(self):
        score = self.client.score_shipment(LEG)
        self.assertGreaterEqual(score.probability, 0.0)
        self.assertLessEqual(score.probability, 1.0)
        self.assertEqual(score.entity_id, "PY-1")
        self.assertTrue(score.model_version)
        self.assertTrue(score.factors)

    def test_ingested_history_changes_the_answer(self):
        leg = dict(LEG, shipment_id="PY-2", carrier="FDX", origin="ORD", destination="LAX")
        before = self.client.score_shipment(leg).probability
        events = []
        for i in range(40):
            events.append(
                {
                    "event_id": f"py-late-{i}",
                    "shipment": dict(
                        leg,
                        shipment_id=f"PY-H{i}",
                        scheduled_departure="2026-11-23T08:00:00Z",
                        scheduled_arrival="2026-11-23T14:00:00Z",
                        actual_departure="2026-11-23T08:00:00Z",
                        actual_arrival="2026-11-23T23:00:00Z",
                        status="SHIPMENT_STATUS_DELIVERED",
                    ),
                }
            )
        answer = self.client.ingest(events)
        self.assertEqual(answer.accepted, 40, answer)
        again = self.client.ingest(events[:1])
        self.assertEqual(again.duplicate, 1)
        after = self.client.score_shipment(leg, as_of="2026-11-24T07:00:00Z").probability
        self.assertGreater(after, before)

    def test_bad_input_names_the_field(self):
        with self.assertRaises(DetourError) as raised:
            self.client.score_shipment(dict(LEG, shipment_id=""))
        self.assertEqual(raised.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("shipment_id", raised.exception.message)
        rejected = self.client.ingest([{"event_id": "py-bad", "shipment": dict(LEG, carrier="")}])
        self.assertEqual(rejected.rejected, 1)
        self.assertIn("carrier", rejected.rejections[0].field)

    def test_recommend_reroute_ranks_carriers(self):
        answer = self.client.recommend_reroute(dict(LEG, shipment_id="PY-3"))
        self.assertTrue(answer.options)
        self.assertEqual(answer.options[0].rank, 1)
        self.assertEqual(answer.entity_id, "PY-3")

    def test_watch_anomalies_replays_the_log_and_ends(self):
        events = list(self.client.watch_anomalies(until_now=True, timeout=10))
        for event in events:
            self.assertTrue(event.cursor)
        with self.assertRaises(DetourError) as raised:
            list(self.client.watch_anomalies(cursor="not-a-cursor", until_now=True, timeout=10))
        self.assertEqual(raised.exception.code, grpc.StatusCode.INVALID_ARGUMENT)

    def test_admin_needs_the_token(self):
        with Client(self.address) as anonymous:
            with self.assertRaises(DetourError) as raised:
                anonymous.models()
        self.assertEqual(raised.exception.code, grpc.StatusCode.UNAUTHENTICATED)
        families = {f.family for f in self.client.models().families}
        self.assertIn("carrier_failure", families)

    def test_an_imported_lightgbm_model_deploys_in_shadow_and_serves_its_probabilities(self):
        repo = self.scratch / "imported"
        subprocess.run(
            [
                str(TRAINER),
                "import",
                "--model",
                str(FIXTURES / "lightgbm.txt"),
                "--family",
                "carrier_failure",
                "--expected",
                str(FIXTURES / "rows.csv"),
                "--expected-column",
                "lightgbm",
                "--out",
                str(repo),
                "--version",
                "lgbm-pyclient",
            ],
            check=True,
            capture_output=True,
        )
        deployed = self.client.deploy(repo / "carrier_failure" / "lgbm-pyclient", shadow=True)
        self.assertEqual(deployed.version, "lgbm-pyclient")
        with open(FIXTURES / "rows.csv") as f:
            table = list(csv.DictReader(f))
        features = list(table[0].keys())[:8]
        rows = [{n: float(r[n]) if r[n] else None for n in features} for r in table]
        scored = self.client.score_features("carrier_failure", rows, version="lgbm-pyclient")
        self.assertEqual(len(scored), len(table))
        worst = max(abs(s.probability - float(r["lightgbm"])) for s, r in zip(scored, table))
        self.assertLessEqual(worst, 1e-6)
        carrier = next(f for f in self.client.models().families if f.family == "carrier_failure")
        self.assertEqual(carrier.candidate, "lgbm-pyclient")
        self.assertEqual(carrier.candidate_mode, "shadow")
        with self.assertRaises(DetourError) as raised:
            self.client.score_features("carrier_failure", [{"weather": 1.0}])
        self.assertEqual(raised.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("weather", raised.exception.message)
        with self.assertRaises(TypeError):
            self.client.score_features("carrier_failure", [{"entity_id": "S-1"}])
        # Clear the shadow, then forget the version.
        self.client.set_shadow("carrier_failure", "")
        self.client.unload("carrier_failure", "lgbm-pyclient")
        carrier = next(f for f in self.client.models().families if f.family == "carrier_failure")
        self.assertEqual(carrier.candidate, "")
        self.assertNotIn("lgbm-pyclient", [v.version for v in carrier.versions if v.state != "refused"])


if __name__ == "__main__":
    unittest.main()
