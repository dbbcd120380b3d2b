"""Layer 1, core: errors, human units, devices and argument checks. Imports nothing of advisor."""
