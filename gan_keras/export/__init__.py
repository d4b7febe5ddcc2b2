"""Export: TF Serving's on-disk layout, the SavedModel signatures and warm-up records.

Nothing here imports gan_keras.serving: the server reads what export writes.
"""
