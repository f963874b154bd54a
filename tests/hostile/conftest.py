"""Hostile-input suite: corpora built at test time, each case asserting the message, the exit code and
that nothing outside the target changed."""
