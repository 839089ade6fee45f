"""One thin click command per DVC stage; the logic lives in the ``comcl`` package."""
