"""What lives on disk: atomic writes, the data folder, outputs and their writer thread,
history, session, presets, the job queue."""
