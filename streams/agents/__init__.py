"""Faust agents: thin I/O around the pure rules of streams/rules/. Each module has
`register(app, settings)`."""
