"""The pure core: typed stack config and node data in, chart values, manifests, profiles and tables out.

Deterministic functions over plain data. Nothing here imports Pulumi, runs kubectl or opens a connection, so
the same function gives what ``pulumi up`` deploys (through the components one level up) and what the plan
command prints (``components/cli``). tests/test_layout.py holds the import graph to that.
"""
