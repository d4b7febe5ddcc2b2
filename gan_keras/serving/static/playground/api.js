// The server's REST API as the page calls it: TF Serving's status, metadata and :predict, and
// the image endpoints (gan_keras/serving/app.py lists them). Every failure becomes an ApiError
// carrying the server's own {"error": ...} message, which the page shows as text: an image
// request that fails never reaches an <img>, so there are no broken images.

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

async function checked(responsePromise) {
  let response;
  try {
    response = await responsePromise;
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(`The server did not answer (${error.message})`, 0);
  }
  if (response.ok) return response;
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (typeof body.error === "string") message = body.error;
  } catch {
    // Not JSON (a proxy's page, say): the status line is all there is.
  }
  throw new ApiError(message, response.status);
}

/** The API paths of one model (optionally one version): /v1/models/<name>[/versions/<v>]. */
export class ModelApi {
  constructor(name, version = "") {
    this.name = name;
    this.version = version;
    this.base = `/v1/models/${encodeURIComponent(name)}` + (version ? `/versions/${encodeURIComponent(version)}` : "");
  }

  url(verb, params = {}) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) {
      if (value !== undefined && value !== null && value !== "") query.set(key, String(value));
    }
    const text = query.toString();
    return `${this.base}:${verb}` + (text ? `?${text}` : "");
  }

  async status() {
    const path = `/v1/models/${encodeURIComponent(this.name)}`;
    return (await checked(fetch(path))).json();
  }

  async metadata() {
    return (await checked(fetch(`${this.base}/metadata`))).json();
  }

  async card() {
    return (await checked(fetch(this.url("card")))).json();
  }

  /** GET an image endpoint: {blob, url} (url: the request, kept on the <img> for reference). */
  async image(verb, params, signal) {
    const url = this.url(verb, params);
    const response = await checked(fetch(url, { signal }));
    const type = response.headers.get("Content-Type") || "";
    if (!type.startsWith("image/")) throw new ApiError(`:${verb} answered ${type}, not an image`, response.status);
    return { blob: await response.blob(), url };
  }

  /** POST a body (a PNG Blob or FormData) to :project or :transform. */
  async post(verb, params, body) {
    const init = { method: "POST", body };
    if (body instanceof Blob) init.headers = { "Content-Type": "image/png" };
    return checked(fetch(this.url(verb, params), init));
  }

  /** :predict in the columnar format: {signature_name, inputs} -> outputs. */
  async predict(signatureName, inputs) {
    const response = await checked(
      fetch(`${this.base}:predict`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ signature_name: signatureName, inputs }),
      }),
    );
    return (await response.json()).outputs;
  }
}

export async function serverConfig() {
  return (await checked(fetch("/playground/config.json"))).json();
}
