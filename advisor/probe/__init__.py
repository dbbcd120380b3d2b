"""Layer 5, probe: a profile measured from a real model and data, and the LR range test."""
