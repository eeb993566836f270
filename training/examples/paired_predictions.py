"""Paired comparison of two `detour-train evaluate` prediction files on the
same carrier decisions: log loss, Brier, ROC-AUC, overall and, for a
simulated history, on the legs inside its labelled one-carrier regional
disruptions (truth_anomalies.csv). Differences are A - B with their standard
error clustered by decision day.

    python3 training/examples/paired_predictions.py A.csv B.csv DATA_DIR

BENCHMARKS.md ("Open alerts as model inputs") has the figures it printed."""
import csv, math, sys, collections
from datetime import datetime

def ts(s): return datetime.fromisoformat(s.replace('Z', '+00:00')).timestamp()

def load(path):
    out = {}
    for r in csv.DictReader(open(path)):
        if r['family'] != 'carrier_failure' or r['outcome'] == '': continue
        out[(r['id'], r['decision_time'])] = (float(r['probability']), int(r['outcome']), float(r['lead_hours'] or 0))
    return out

def auc(ps, ys):
    pairs = sorted(zip(ps, ys))
    pos = sum(ys); neg = len(ys) - pos
    rank_sum = 0; i = 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]: j += 1
        r = (i + j + 1) / 2
        rank_sum += r * sum(y for _, y in pairs[i:j]); i = j
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)

def ll(p, y):
    p = min(max(p, 1e-12), 1 - 1e-12)
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))

a, b = load(sys.argv[1]), load(sys.argv[2])
data = sys.argv[3]
legs = {r['shipment_id']: (r['carrier'], r['destination'], ts(r['scheduled_departure'])) for r in csv.DictReader(open(f'{data}/shipments.csv'))}
windows = collections.defaultdict(list)
try:
    for r in csv.DictReader(open(f'{data}/truth_anomalies.csv')):
        if r['kind'] == 'carrier_region_disruption':
            windows[(r['carrier'], r['region'])].append((ts(r['start']), ts(r['end'])))
except FileNotFoundError:
    pass

def inside(sid):
    c, d, dep = legs[sid]
    return any(s <= dep <= e for s, e in windows.get((c, d), []))

keys = sorted(set(a) & set(b))
def report(name, ks):
    if not ks: print(name, 'no rows'); return
    ys = [a[k][1] for k in ks]
    pa = [a[k][0] for k in ks]; pb = [b[k][0] for k in ks]
    # Paired differences, clustered by decision day.
    by_day = collections.defaultdict(lambda: [0.0, 0.0, 0])
    for k in ks:
        day = k[1][:10]
        p, y, _ = a[k]; q, _, _ = b[k]
        by_day[day][0] += ll(p, y) - ll(q, y)
        by_day[day][1] += (p - y) ** 2 - (q - y) ** 2
        by_day[day][2] += 1
    n = len(ks)
    def se(i):
        mean = sum(v[i] for v in by_day.values()) / n
        var = sum((v[i] - mean * v[2]) ** 2 for v in by_day.values())
        return mean, math.sqrt(var) / n
    dll, sll = se(0); dbr, sbr = se(1)
    print(f"{name}: {n} decisions, base rate {sum(ys)/n:.3f}")
    print(f"  log loss  A {sum(ll(p,y) for p,y in zip(pa,ys))/n:.4f}  B {sum(ll(q,y) for q,y in zip(pb,ys))/n:.4f}  A-B {dll:+.5f} ± {sll:.5f} (SE, by day)")
    print(f"  Brier     A {sum((p-y)**2 for p,y in zip(pa,ys))/n:.4f}  B {sum((q-y)**2 for q,y in zip(pb,ys))/n:.4f}  A-B {dbr:+.5f} ± {sbr:.5f}")
    if 0 < sum(ys) < n:
        print(f"  ROC-AUC   A {auc(pa,ys):.4f}  B {auc(pb,ys):.4f}")
    print(f"  mean p    A {sum(pa)/n:.4f}  B {sum(pb)/n:.4f}  observed {sum(ys)/n:.4f}")

report('all', keys)
if windows:
    report('legs inside a labelled one-carrier regional disruption', [k for k in keys if inside(k[0])])
    report('  of those, decided at departure (lead 0)', [k for k in keys if inside(k[0]) and a[k][2] == 0])
