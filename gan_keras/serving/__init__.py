"""A model server for exported generators that speaks TensorFlow Serving's REST API.

    registry  which versions exist under the base path; loads and swaps the served one
    codec     TF Serving's REST formats: predict requests (row/columnar), responses, errors
    app       the Flask app (routes, the PNG sample endpoint) and running it on waitress

The command line is gan_keras.serve (`python -m gan_keras.serve`, `gan-serve`).
"""
