"""The improvement register (SPEC §7.4): improvements, their states and transitions, the baseline
captured on approval and the verification of what they achieved."""
