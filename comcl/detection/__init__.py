"""Pipeline part 2 (DESIGN §4.1): the lesion detector, detect, healthy crops and the patch store."""
