"""The automatic loop: ``reconciler watch`` keeps live services at the newest good revision.

A new commit (seen on the local repository's refs, fetched from a remote, or
announced by a webhook) is reconciled at once; live state is re-read every
drift interval and corrected or reported per target; a bad revision is never
applied and the last good one stays in force. ``status.json`` under the state
directory and Prometheus metrics say where things stand.
"""
