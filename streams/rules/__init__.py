"""Pure rules (no I/O): normalising, accounting, labelling, carbon-benefit points.

The live agents and `carbon-accounts replay` call the same functions, so they agree.
"""
