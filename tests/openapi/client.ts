// Compiled by scripts/check_openapi.sh: the types openapi-typescript generates from the served
// document must type-check, and name what clients use.
import type { paths, components } from "./generated/api";

type ErrorBody = components["schemas"]["ErrorBody"];
type Upload = paths["/v1/volumes/{name}/uploads"]["post"];
type Write = paths["/v1/volumes/{name}/files/content"]["put"];

export const notFound: ErrorBody = {
  error: { code: "not_found", message: "no such volume", retryable: false },
};
// Binary bodies are strings of bytes (format: binary), not arrays of integers.
export type WriteBody = Write["requestBody"] extends { content: { "application/octet-stream": infer B } } ? B : never;
export const body: WriteBody = "bytes";
// The tus headers are typed parameters.
export const tusHeaders: Upload["parameters"]["header"] = {
  "Tus-Resumable": "1.0.0",
  "Upload-Length": 10,
  "Upload-Metadata": "path L2EudHh0",
};
