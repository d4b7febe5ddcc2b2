"""Data: the record contract the ingest stage writes, and the tf.data input that reads it."""
