#!/usr/bin/env python3
"""Batch files for bench-bulk.sh.

    gen.py OUTDIR [N]

Writes into OUTDIR, for N records (default 500000) with random Adobe-like
tntIds (32 hex digits + ".35_0", in random order) and 5 string attributes
param1..param5 of 10-20 characters ([A-Za-z0-9], so nothing needs escaping
or URL-encoding):

  batch.csv         Adobe batch file: batch=pcId,param1,...,param5
  batch.ndjson      one {"pcId": ..., "param1": ...} a line
  batch.json        the same objects in one JSON array
  batch.copy        the same rows for COPY ... FROM (FORMAT text) into a table
                    shaped like tgt_profile.profiles (client 'c', attributes
                    as JSON text, fixed timestamps)
  preload.copy      every other key of the batch (N/2) with other values of
                    the same attributes: the "half existing" starting state
  preload_other.copy  N/2 keys not in the batch: the COPY reference's
                    starting state for "half" (same table size, no conflicts)
  sizes             "name bytes" lines

Deterministic (fixed seed), about 5 s for 500,000 records.
"""
import os
import random
import sys

out = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 500000
rnd = random.Random(20240501)
ALPHA = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
NAMES = ["param%d" % i for i in range(1, 6)]
TS = "2024-05-01 00:00:00+00"

# Values are slices of one random pool: fast, and practically all distinct.
POOL = "".join(rnd.choices(ALPHA, k=1 << 22))
PLEN = len(POOL) - 21


def values():
    bits = rnd.getrandbits(32 * 5)
    vals = []
    for _ in range(5):
        b = bits & 0xFFFFFFFF
        bits >>= 32
        off = b % PLEN
        ln = 10 + (b >> 24) % 11  # 10..20
        vals.append(POOL[off:off + ln])
    return vals


def keys(count, seen):
    ks = []
    while len(ks) < count:
        k = "%032x.35_0" % rnd.getrandbits(128)
        if k not in seen:
            seen.add(k)
            ks.append(k)
    return ks


seen = set()
batch_keys = keys(n, seen)
other_keys = keys(n // 2, seen)


def obj(key, vals):
    return '{"pcId":"%s",%s}' % (key, ",".join('"%s":"%s"' % (a, v) for a, v in zip(NAMES, vals)))


def attrs_json(vals):
    # jsonb's own output order and spacing do not matter to COPY
    return "{%s}" % ", ".join('"%s": "%s"' % (a, v) for a, v in zip(NAMES, vals))


def copy_line(key, vals):
    return "c\t%s\t\\N\t%s\t%s\t%s\t%s\n" % (key, attrs_json(vals), TS, TS, TS)


rows = [(k, values()) for k in batch_keys]
path = lambda f: os.path.join(out, f)

with open(path("batch.csv"), "w") as f:
    f.write("batch=pcId,%s\n" % ",".join(NAMES))
    f.writelines("%s,%s\n" % (k, ",".join(v)) for k, v in rows)
with open(path("batch.ndjson"), "w") as f:
    f.writelines(obj(k, v) + "\n" for k, v in rows)
with open(path("batch.json"), "w") as f:
    f.write("[\n")
    f.write(",\n".join(obj(k, v) for k, v in rows))
    f.write("\n]\n")
with open(path("batch.copy"), "w") as f:
    f.writelines(copy_line(k, v) for k, v in rows)
with open(path("preload.copy"), "w") as f:
    f.writelines(copy_line(k, values()) for k, _ in rows[::2])
with open(path("preload_other.copy"), "w") as f:
    f.writelines(copy_line(k, values()) for k in other_keys)
with open(path("sizes"), "w") as f:
    for name in ("batch.csv", "batch.ndjson", "batch.json", "batch.copy"):
        f.write("%s %d\n" % (name, os.path.getsize(path(name))))
