"""HTTP routes, one module per resource; each only wires a request to one service function."""
