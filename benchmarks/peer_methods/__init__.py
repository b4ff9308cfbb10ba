"""Peer methods on the same data as IPAD-CLIP (paper Tables 1, 3 and 4): benchmark code, not SDK
features. ``models`` holds the baselines, ``data`` the fixed subsets and generator families,
``runs`` one (table, method, seed) run, ``report`` the tables; ``benchmarks/peers.py`` is the
command."""
