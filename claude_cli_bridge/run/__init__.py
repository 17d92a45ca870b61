"""Running the bridge: the server, the command line, doctor and the start-up banner."""
