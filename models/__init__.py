"""Which weights, where they come from, how they load and how much memory they take."""
