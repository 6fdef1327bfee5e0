"""`carbon-accounts report ACCOUNT`: the carbon credit report (defined beside `query`)."""

from streams.cli.query_cmd import report as command

__all__ = ["command"]
