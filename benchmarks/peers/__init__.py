"""chatkeep beside the libraries a user would pick instead, one workload per module.

Each module runs as ``python -m peers.NAME --out rows.json`` from ``benchmarks/``
(``benchmarks/run_all.py`` does this, one process per workload so a peer's
memory or global settings never leak into the next workload) and writes a list
of rows (``peers.common.Row``) for the summary table.
"""
