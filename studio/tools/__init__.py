"""Developer tools that derive files the studio ships in resources/ (run once, outputs committed)."""
