"""``python -m benchmarks [--quick] [--milp]``: the whole benchmark suite (see run_all.py)."""

from benchmarks.run_all import main

raise SystemExit(main())
