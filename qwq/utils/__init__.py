"""Layer 0 helpers: errors, atomic writes, paths, progress, seeding. Imports nothing else from qwq."""
