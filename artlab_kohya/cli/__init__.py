"""The command line: main.py registers one module per command (named like the command); each parses
its arguments, calls the library and prints. Errors are ArtlabErrors, printed once by main.py.
May import every package below it; nothing imports cli."""
