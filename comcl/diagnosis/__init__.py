"""Pipeline part 4 (DESIGN §4.3): the classifier, fine-tuning, evaluation and its metrics."""
