"""The client of an exported model, shared by the server and the command line.

    model        loading a version; its signatures, task and model_info.json; RequestError
    sampling     samples, walks, edits and projections from a generator's signatures;
                 edit directions by name; the comma-separated arguments
    image_files  PNG decoding to an exact shape, PNG strips and grids, GIFs, image files
    transform    image-to-image exports: serving_default on checked PNGs

The server (gan_keras.serving) imports this package; nothing here imports the server.
"""
