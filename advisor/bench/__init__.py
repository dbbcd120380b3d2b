"""Layer 7, bench: ``advisor bench``, the trainers' speed on this machine."""
