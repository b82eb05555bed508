"""The side-by-side benchmark harness behind ``python -m bench`` (see docs/benchmarks.md).

Modules: ``procs`` (the platforms under test as processes, and their memory), ``load``
(the load generators both sides of a pair share), ``pairs`` (the workloads), ``dbos`` (the
DBOS pair), ``scale`` (edgelet-alone scale runs), ``report`` (table and RESULTS.md),
``machine`` (what ran where).
"""
