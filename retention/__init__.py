"""How long things are kept and the proof of it: audit log, tombstones, policy, sweeper."""
