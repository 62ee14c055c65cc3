"""Table 1 definitions (ablations.py), the config writer (configs.py) and the table builder (table.py)."""
