"""`aimi batch`: one long-lived process segments a manifest of series (IDC or a local folder), resumably.

The model loads once; a ledger in the output folder records every series' state, so a rerun of the same command
(after a failure, a preemption or `kill -9`) skips what is done, retries what failed and never duplicates an output.
"""
