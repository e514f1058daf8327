#!/usr/bin/env python3
"""An Altair export of N pours on 20 taps over the last 30 days, as `altair-server
export` writes it (a deletion after every 100th pour, a key on every 10th), for the
import benchmarks: python3 scripts/make-export.py N > stream.ndjson"""
import datetime, hashlib, json, sys

n = int(sys.argv[1])
now = datetime.datetime.now(datetime.timezone.utc)
start = now - datetime.timedelta(days=30)
step = datetime.timedelta(days=30) / max(n, 1)
hash = hashlib.sha256()
lines = []
counts = {}

def stamp(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"

def record(kind, obj):
    text = json.dumps({"t": kind, **obj}, separators=(",", ":")) + "\n"
    hash.update(text.encode())
    counts[kind] = counts.get(kind, 0) + 1
    lines.append(text)

for i in range(1, n + 1):
    at = start + step * i
    pour = {"id": i, "venue": "main", "tapId": i % 20 + 1, "volume": 500.0, "type": "pint",
            "timestamp": stamp(at), "flags": []}
    if i % 10 == 0:
        record("pour", {"pour": pour, "key": {"key": f"k{i}", "created": stamp(now), "deviceTimestamp": False}})
    else:
        record("pour", {"pour": pour})
    if i % 100 == 0:
        record("delete", {"id": i - 50, "after": i})
header = {"t": "header", "format": "altair-log", "version": 1, "source": "journal",
          "exportedAt": stamp(now), "defaultVenue": "main", "lastId": n,
          "counts": dict(sorted(counts.items()))}
out = sys.stdout
out.write(json.dumps(header, separators=(",", ":")) + "\n")
out.writelines(lines)
out.write(json.dumps({"t": "trailer", "counts": dict(sorted(counts.items())), "sha256": hash.hexdigest()},
                     separators=(",", ":")) + "\n")
