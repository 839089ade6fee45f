"""Run-time plumbing of every stage: params, errors, atomic output, paths, seeding, process pools, logging, device and distributed set-up, checkpoints."""
