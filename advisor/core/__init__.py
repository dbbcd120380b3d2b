"""Layer 1, core: errors, human units, devices, argument checks and the process clock.

Imports nothing of advisor.
"""
