"""A model server for exported generators that speaks TensorFlow Serving's REST and gRPC APIs.

    versions      which versions exist under a base path; loads, warms up and swaps the
                  served ones by a version policy; requests hold (lease) the one they run on
    models        the served models (--model_base_path, or several from --model_config_file),
                  version labels, config reloads; resolves a request's name, version, label
    model_config  --model_config_file: TF Serving's ModelServerConfig, parsed and checked
    batching      --enable_batching: concurrent :predict requests merged into one model call
    batching_parameters  --batching_parameters_file: TF Serving's BatchingParameters, checked
    codec         signature lookup and input checks (both APIs); TF Serving's REST formats:
                  predict requests (row/columnar), responses (`_bytes` outputs as b64), errors
    app           the Flask app: the REST routes (status, metadata, :predict, the image
                  endpoints' dispatch, /monitoring/prometheus/metrics) and their errors
    image_endpoints  :sample, :interpolate, :edit, :project, :transform and their query
                  parameters, on gan_keras.client
    rest_predict  REST :predict's steps, shared by the WSGI route and the event-loop server
    rest_server   the REST HTTP server: :predict on one event loop (uvicorn), Flask for the rest
    responses     the REST response bodies (compact JSON, images with X-Model-Version)
    server        running REST (rest_server) and gRPC side by side on one ServedModels
    grpc_service  PredictionService (Predict, GetModelMetadata), ModelService (GetModelStatus)
                  on tensorflow-serving-api's protos
    prometheus    the Prometheus metrics, one registry per app

Warm-up records (assets.extra/tf_serving_warmup_requests) are gan_keras.export.warmup's:
written at export, replayed here at load.

The command line is gan_keras.serve (`python -m gan_keras.serve`, `gan-serve`).
"""
