"""Storage: one filesystem layer (local and object stores) and atomic writes."""
