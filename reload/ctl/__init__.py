"""``reloadctl``: the command-line client of a RELOAD peer."""
