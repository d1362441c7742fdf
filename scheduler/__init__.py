"""overnight's scheduler and command line (`overnight`)."""
