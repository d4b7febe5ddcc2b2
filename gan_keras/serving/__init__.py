"""A model server for exported generators that speaks TensorFlow Serving's REST and gRPC APIs.

    versions      which versions exist under the base path; loads, warms up and swaps the
                  served one; resolves a request's model name and version
    codec         signature lookup and input checks (both APIs); TF Serving's REST formats:
                  predict requests (row/columnar), responses (`_bytes` outputs as b64), errors
    app           the Flask app: the REST routes (status, metadata, :predict, the image
                  endpoints' dispatch, /monitoring/prometheus/metrics) and their errors
    image_endpoints  :sample, :interpolate, :edit, :project, :transform and their query
                  parameters, on gan_keras.client
    responses     the REST response bodies (compact JSON, images with X-Model-Version)
    server        running REST (waitress) and gRPC side by side on one ModelVersions
    grpc_service  PredictionService (Predict, GetModelMetadata), ModelService (GetModelStatus)
                  on tensorflow-serving-api's protos
    prometheus    the Prometheus metrics, one registry per app

Warm-up records (assets.extra/tf_serving_warmup_requests) are gan_keras.export.warmup's:
written at export, replayed here at load.

The command line is gan_keras.serve (`python -m gan_keras.serve`, `gan-serve`).
"""
