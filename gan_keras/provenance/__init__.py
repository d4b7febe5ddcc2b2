"""Provenance of generated images: every image says it was generated, and by which model.

    facts       what is recorded: IPTC's trainedAlgorithmicMedia digital source type, the
                software agent (gan_keras and its version), the model (name, version, export
                fingerprint) and the request's recipe; as a C2PA manifest definition
    metadata    the same facts written unsigned: XMP (Iptc4xmpExt:DigitalSourceType) and PNG
                text chunks, or a GIF comment and XMP extension; and read back
    signing     C2PA content credentials with the c2pa-python bindings, from a private key and
                its certificate chain (PEM files)
    stamp       one call for a writer: the unsigned metadata, then credentials when signing
    verify      what an image carries: credentials (who signed, which model, whether the
                pixels still match), unsigned metadata, or nothing
    cli         the `gan-verify IMAGE...` console script
    detector    a small CNN telling one model's samples from real images, with no metadata: its
                training, held-out AUC (clean, JPEG 75, 0.5x resize) and files; the evaluate
                stage trains it, the export ships it as the `detect` signature
    detection   what `:verify` and `gan-verify --model` add when an image has no valid
                credentials: the `detect` signature's probability that the model made it

Unsigned metadata is a claim anyone can write or strip; only a C2PA manifest that validates
says who made the image. Nothing here ever reports an image as signed unless c2pa's Reader
validated its manifest.
"""
