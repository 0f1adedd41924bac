"""How often passages of different files are near-identical (kb.duplicates) in /work/shared/data/enterprise_kb: 300-word windows of every .md file, the likeness of each pair of different files sharing a shingle (shingles held by over 50 windows skipped)."""
import sys, pathlib, random, itertools, time
from kb.duplicates import likeness, shingles, NEAR_DUPLICATE
files = sorted(pathlib.Path("/work/shared/data/enterprise_kb").rglob("*.md"))
passages = []  # (file, text): 300-word windows
for f in files:
    words = f.read_text(errors="ignore").split()
    for i in range(0, max(len(words), 1), 300):
        passages.append((f.name, " ".join(words[i:i+300])))
t = time.time()
sh = [shingles(p) for _, p in passages]
# inverted index over shingles, to find candidate pairs that share any shingle
from collections import defaultdict
inv = defaultdict(set)
for i, s in enumerate(sh):
    for g in s: inv[g].add(i)
counts = defaultdict(int)
for g, ids in inv.items():
    if len(ids) > 50: continue  # boilerplate shingles
    for a, b in itertools.combinations(sorted(ids), 2):
        counts[(a, b)] += 1
buckets = defaultdict(int); hits = []
for (a, b), c in counts.items():
    if passages[a][0] == passages[b][0]: continue
    v = likeness(passages[a][1], passages[b][1])
    buckets[round(v, 1)] += 1
    if v >= NEAR_DUPLICATE: hits.append((v, passages[a][0], passages[b][0]))
print(len(files), "files", len(passages), "passages; pairs of different files sharing a shingle:", sum(buckets.values()))
print("likeness histogram (rounded to 0.1):", dict(sorted(buckets.items())))
print("pairs >= %.2f: %d" % (NEAR_DUPLICATE, len(hits)))
for h in sorted(hits, reverse=True)[:8]: print("  %.2f %s | %s" % h)
print("%.1f s" % (time.time() - t))
