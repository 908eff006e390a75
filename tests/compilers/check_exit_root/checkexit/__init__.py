"""A package outside the test directory holding an exit handler (its steps' import root differs)."""
