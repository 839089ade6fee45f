"""CoMCL pipeline: the domain logic behind the DVC stages in ``stages/``.

Modules are small and flat, one concern each; see ``docs/architecture.md``.
"""
