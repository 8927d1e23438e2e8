#!/usr/bin/env python3
"""Hostile batches for bench-memory.sh (DESIGN.md "Memory", issue 9 finding 5).

    gen_hostile.py OUTDIR

Writes into OUTDIR:

  one_profile.ndjson  one profile of 1,500 attributes (20-character values),
                      then 9,999 records of the same profile, each changing
                      one attribute (about 340 kB): every merge rebuilds the
                      whole profile
  wide_header.csv     an Adobe batch file whose header names 100,000
                      columns, then rows that fill every cell (about 50 MB)
  many_members.ndjson one NDJSON line of 4.9 million members (about 50 MB)
  existing.ndjson     4,000 small records, each for another profile that
                      already holds about 60 kB of attributes (made by
                      bench-memory.sh): what a chunk fetches
  sizes               "name bytes" lines

Deterministic; a few seconds.
"""
import os
import sys

out = sys.argv[1]


def write(name, text):
    with open(os.path.join(out, name), "w") as f:
        f.write(text)


# one profile, many records
lines = ['{"pcId":"wide",' + ",".join('"a%04d":"%s"' % (i, ("v%04d" % i) * 4)
                                      for i in range(1500)) + "}"]
for r in range(1, 10000):
    lines.append('{"pcId":"wide","a%04d":"x%d"}' % (r % 1500, r))
write("one_profile.ndjson", "\n".join(lines) + "\n")

# a header of 100,000 columns (the most allowed), rows filling every cell
ncols = 99999  # with the key column, the 100,000 a header may have
header = "batch=pcId," + ",".join("c%05d" % i for i in range(ncols)) + "\n"
parts = [header]
size = len(header)
row = 0
cells = "," + ",".join("v" for _ in range(ncols)) + "\n"
while size + len(cells) + 12 < 50 * 1000 * 1000:
    row += 1
    line = "k%d" % row + cells
    parts.append(line)
    size += len(line)
write("wide_header.csv", "".join(parts))

# one record of 4.9 million members
ALPHA = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def name(i):
    s = ""
    for _ in range(5):
        s += ALPHA[i % 62]
        i //= 62
    return s


members = ['"%s":1' % name(i) for i in range(4900000)]
write("many_members.ndjson", '{"pcId":"big",' + ",".join(members) + "}\n")

# many existing wide profiles, each named once
write("existing.ndjson",
      "".join('{"pcId":"e%05d","n":"%d"}\n' % (i, i) for i in range(4000)))

with open(os.path.join(out, "sizes"), "w") as f:
    for n in ("one_profile.ndjson", "wide_header.csv", "many_members.ndjson",
              "existing.ndjson"):
        f.write("%s %d\n" % (n, os.path.getsize(os.path.join(out, n))))
