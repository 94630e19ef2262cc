"""The workflows a notebook calls: members and fold groups, gathering their cached outputs,
predict, vote, report (and its rendering) and the submission."""
