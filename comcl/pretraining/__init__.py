"""Pipeline part 3 (DESIGN §4.2, the paper's §3): CoMCL multi-level contrastive pretraining with SPL."""
