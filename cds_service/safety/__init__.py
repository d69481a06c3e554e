"""The clinical safety case kept true by code: rule traceability, the content release check, the hazard log."""
