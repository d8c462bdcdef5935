"""The command-line tools: the offline plan, the one-command restore and the config reference table.

Each is run as ``python -m components.cli.<name>`` and builds on the core alone, never on another command, so a
command can change without moving the others. tests/test_layout.py holds the import graph to that.
"""
