#!/usr/bin/env python3
"""Scores `detour-train detect` on real operational series nobody here wrote:
the Numenta Anomaly Benchmark's (NAB) real-world series, with its labelled
anomaly windows.

    git clone --depth 1 https://github.com/numenta/NAB /tmp/NAB
    python3 training/examples/nab_windows.py prepare /tmp/NAB /tmp/nab_series.csv
    cargo run --release -p detour-training -- detect --series /tmp/nab_series.csv --out /tmp/nab_scored.csv
    python3 training/examples/nab_windows.py score /tmp/NAB /tmp/nab_scored.csv
    python3 training/examples/nab_windows.py baseline /tmp/nab_series.csv /tmp/nab_z.csv
    python3 training/examples/nab_windows.py score /tmp/NAB /tmp/nab_z.csv

`prepare` writes every series of the real-world corpora (machine metrics,
AWS CloudWatch, traffic, ad exchange, known causes; not the artificial ones
or tweets) as `series_id,timestamp,value` rows. `score` groups alerts into
episodes (alerts less than an hour apart) and reports, per corpus and
overall: labelled windows, windows with an alert inside (recall), the delay
from each detected window's start to its first alert, and episodes outside
every window per series per week (false alerts). NAB's windows are wide (a
tenth of a series' length, split among its anomalies, centred on each), so
an alert anywhere in one counts. `baseline` scores the same rows with a
plain rolling z-score (each point against the mean and standard deviation
of its series' previous 168 points, alert at |z| ≥ 3.29, the two-sided
p = 0.001 of a normal), for comparison. Standard library only.
"""

import csv
import datetime as dt
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

CORPORA = [
    "realAWSCloudwatch",
    "realAdExchange",
    "realKnownCause",
    "realTraffic",
]


def parse(text):
    text = text.strip().replace("T", " ").rstrip("Z")
    return dt.datetime.fromisoformat(text[:19]).replace(tzinfo=dt.timezone.utc).timestamp()


def prepare(nab, out):
    rows = 0
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["series_id", "timestamp", "value"])
        for corpus in CORPORA:
            for path in sorted((Path(nab) / "data" / corpus).glob("*.csv")):
                with open(path) as src:
                    for r in csv.DictReader(src):
                        w.writerow([f"{corpus}/{path.name}", r["timestamp"], r["value"]])
                        rows += 1
    print(f"{rows} rows written to {out}")


def baseline(series, out):
    from collections import deque
    past = defaultdict(deque)
    with open(series) as src, open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["series_id", "timestamp", "value", "anomaly_score", "alert"])
        for r in csv.DictReader(src):
            values = past[r["series_id"]]
            v = float(r["value"])
            alert = 0
            if len(values) >= 48:
                mean = sum(values) / len(values)
                sd = (sum((x - mean) ** 2 for x in values) / len(values)) ** 0.5
                alert = int(abs(v - mean) >= 3.29 * max(sd, 1e-9 * max(abs(mean), 1)))
            values.append(v)
            if len(values) > 168:
                values.popleft()
            w.writerow([r["series_id"], r["timestamp"], r["value"], "", alert])


def score(nab, scored):
    windows = json.load(open(Path(nab) / "labels" / "combined_windows.json"))
    alerts = defaultdict(list)
    span = {}
    for r in csv.DictReader(open(scored)):
        t = parse(r["timestamp"])
        s = r["series_id"]
        lo, hi = span.get(s, (t, t))
        span[s] = (min(lo, t), max(hi, t))
        if r["alert"] == "1":
            alerts[s].append(t)
    per_corpus = defaultdict(lambda: {"windows": 0, "detected": 0, "delays": [], "false": 0, "weeks": 0.0, "series": 0})
    for s, (lo, hi) in sorted(span.items()):
        corpus = s.split("/")[0]
        c = per_corpus[corpus]
        c["series"] += 1
        c["weeks"] += (hi - lo) / (7 * 86400)
        labelled = [(parse(a), parse(b)) for a, b in windows.get(s, [])]
        episodes = []
        for t in sorted(alerts[s]):
            if not episodes or t - episodes[-1][-1] > 3600:
                episodes.append([t])
            else:
                episodes[-1].append(t)
        for a, b in labelled:
            c["windows"] += 1
            first = [t for t in alerts[s] if a <= t <= b]
            if first:
                c["detected"] += 1
                c["delays"].append((min(first) - a) / 60)
        c["false"] += sum(1 for e in episodes if not any(a <= t <= b for t in e for a, b in labelled))
    total = {"windows": 0, "detected": 0, "delays": [], "false": 0, "weeks": 0.0, "series": 0}
    print("corpus               series windows detected recall  median delay (min)  false alerts per series-week")
    for corpus, c in sorted(per_corpus.items()):
        for k in total:
            total[k] += c[k]
        report(corpus, c)
    report("all", total)


def report(name, c):
    recall = c["detected"] / max(c["windows"], 1)
    median = statistics.median(c["delays"]) if c["delays"] else float("nan")
    rate = c["false"] / max(c["weeks"], 1e-9)  # weeks summed over series: per series-week
    print(f"{name:<20} {c['series']:>6} {c['windows']:>7} {c['detected']:>8} {recall:>6.2f} {median:>14.0f} {rate:>22.2f}")


if __name__ == "__main__":
    verbs = {"prepare": prepare, "score": score, "baseline": baseline}
    if len(sys.argv) != 4 or sys.argv[1] not in verbs:
        print(__doc__)
        sys.exit(2)
    verbs[sys.argv[1]](sys.argv[2], sys.argv[3])
