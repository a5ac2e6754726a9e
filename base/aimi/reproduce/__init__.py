"""`aimi reproduce`: re-run a model on a series IDC published an AIMI SEG for, and compare the two SEGs.

index (which SEGs, which model, from the bundled idc-index), downloads (series into OUT whole or not at all),
runs (the chain through `aimi run` / `aimi batch`, the comparison through `aimi evaluate`'s code), tables and
overlay (what is written), cli (the subcommand).
"""
