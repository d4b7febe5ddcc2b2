"""TFX-style pipeline stages (ingest, train, evaluate, export) and their runner."""
