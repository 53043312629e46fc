"""`make bench`: orderlog's figures on this machine, each beside its ceiling or peer."""
