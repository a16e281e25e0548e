"""Training of learned components on the benchmark's ``training_objects`` only
(``slicesam train-clicks``). Imports torch: nothing outside the training verb imports this."""
