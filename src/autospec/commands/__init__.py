"""One module per ``autospec`` sub-command (discovered by :mod:`autospec.cli`)."""
