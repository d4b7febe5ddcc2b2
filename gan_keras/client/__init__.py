"""The client of an exported model, shared by the server and the command line."""
