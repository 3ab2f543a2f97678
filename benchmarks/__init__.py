"""``make bench``: kvruntime measured side by side with the limit and its peers.

Run ``python -m benchmarks [--quick] [--out DIR]``. One run measures every
system on the same keys (16 bytes) and values (100 bytes); each workload runs
a warm-up round (discarded) and then repeated rounds, the systems interleaved
round by round so that machine noise hits all of them alike; figures are the
medians of the rounds. Modules:

- ``data``: the sizes of a run and the keys and values;
- ``systems/``: one driver per system (the limit = plyvel in-process,
  kvruntime through the bus and the client, pykka, redis-server, SQLite);
- ``workloads/``: one module per workload, each turning driver timings into
  measurements;
- ``runner``: the rounds; ``report``, ``targets``, ``chart``: the output.
"""
