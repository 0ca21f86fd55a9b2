"""The hostile suite (issue 9): each test builds the bad input or fault a hostile trial found and checks it stays
fixed. Point -> file: 1, 3, 9 and the scan part of 2: test_scan; 2 (watchdog, SLURM stop loop): test_watchdog;
4, 11: test_rerun; 5: test_truncation; 6, 10: test_figures; 7: test_environment; 8: test_modes; 12: test_locks;
13 (needs the local cluster): tests/executors/slurm/test_hostile.py."""
