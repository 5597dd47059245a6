"""The command line (`python -m dt_playground ...`) and `bench`."""
