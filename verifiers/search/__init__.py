"""Branch and bound over input boxes (``splitting``) and the counterexample search (``witness``)."""
