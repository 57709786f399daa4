"""The click command line. Commands parse arguments, call the Python API and print; no logic here."""
