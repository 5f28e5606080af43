// The SDK's wire types (src/wire.ts) are the server's OpenAPI document's schemas: regenerated
// here from a live server's /v1/openapi.json, they must equal the committed file (run
// `npm run gen:wire -- URL` after a server change; tsc then shows the SDK code it breaks).
// And every route the SDK calls is in the document with that method.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { after, before, test } from "node:test";

import { PACKAGE_DIR, startServer, type TestServer } from "./server.js";

let server: TestServer;
let doc: { paths: Record<string, Record<string, unknown>>; components: { schemas: Record<string, unknown> } };
before(async () => {
  server = await startServer();
  const r = await fetch(`${server.url}/v1/openapi.json`);
  assert.equal(r.status, 200);
  doc = (await r.json()) as typeof doc;
});
after(async () => {
  await server?.stop();
});

test("src/wire.ts is what scripts/gen-wire.mjs makes of the server's document", async () => {
  const gen = (await import(pathToFileURL(join(PACKAGE_DIR, "scripts", "gen-wire.mjs")).href)) as { generate(d: unknown): string };
  const committed = readFileSync(join(PACKAGE_DIR, "src", "wire.ts"), "utf8");
  assert.equal(gen.generate(doc), committed, "src/wire.ts is out of date: run `npm run gen:wire -- URL-of-a-server`");
});

test("the generator is faithful: required, optional, nullable, enums, maps, unions, refs", async () => {
  const gen = (await import(pathToFileURL(join(PACKAGE_DIR, "scripts", "gen-wire.mjs")).href)) as { generate(d: unknown): string };
  const out = gen.generate({
    components: {
      schemas: {
        A: {
          type: "object",
          required: ["id"],
          properties: {
            id: { type: "integer" },
            name: { type: ["string", "null"] },
            kind: { $ref: "#/components/schemas/K" },
            tags: { type: "object", additionalProperties: { type: "string" } },
            cmd: { oneOf: [{ type: "array", items: { type: "string" } }, { type: "string" }] },
          },
        },
        K: { type: "string", enum: ["x", "y"] },
      },
    },
  });
  assert.match(out, /export interface A \{\n {2}cmd\?: string\[\] \| string;\n {2}id: number;\n {2}kind\?: K;\n {2}name\?: string \| null;\n {2}tags\?: \{ \[key: string\]: string \};\n\}/);
  assert.match(out, /export type K = "x" \| "y";/);
});

// (method, route) of every request the SDK makes (src/*.ts).
const SDK_ROUTES: Array<[string, string]> = [
  ["post", "/v1/volumes"],
  ["get", "/v1/volumes"],
  ["get", "/v1/volumes/{name}"],
  ["delete", "/v1/volumes/{name}"],
  ["get", "/v1/volumes/{name}/files/content"],
  ["put", "/v1/volumes/{name}/files/content"],
  ["post", "/v1/volumes/{name}/files/batch"],
  ["post", "/v1/volumes/{name}/files/mkdir"],
  ["post", "/v1/volumes/{name}/files/move"],
  ["post", "/v1/volumes/{name}/files/copy"],
  ["delete", "/v1/volumes/{name}/files"],
  ["post", "/v1/volumes/{name}/files/edit"],
  ["get", "/v1/volumes/{name}/files/list"],
  ["get", "/v1/volumes/{name}/files/stat"],
  ["get", "/v1/volumes/{name}/files/exists"],
  ["post", "/v1/volumes/{name}/files/search"],
  ["post", "/v1/volumes/{name}/files/replace"],
  ["get", "/v1/volumes/{name}/files/archive"],
  ["post", "/v1/volumes/{name}/files/url"],
  ["get", "/v1/volumes/{name}/watch"],
  ["get", "/v1/volumes/{name}/uploads"],
  ["post", "/v1/volumes/{name}/uploads"],
  ["head", "/v1/volumes/{name}/uploads/{id}"],
  ["patch", "/v1/volumes/{name}/uploads/{id}"],
  ["delete", "/v1/volumes/{name}/uploads/{id}"],
  ["post", "/v1/sandboxes"],
  ["get", "/v1/sandboxes"],
  ["get", "/v1/sandboxes/{id}"],
  ["delete", "/v1/sandboxes/{id}"],
  ["post", "/v1/sandboxes/{id}/exec"],
  ["get", "/v1/sandboxes/{id}/files/content"],
  ["put", "/v1/sandboxes/{id}/files/content"],
  ["get", "/v1/sandboxes/{id}/files/list"],
  ["post", "/v1/sandboxes/{id}/attachments"],
  ["delete", "/v1/sandboxes/{id}/attachments"],
  ["get", "/v1/sandboxes/{id}/attachments"],
  ["post", "/v1/sandboxes/{id}/pause"],
  ["post", "/v1/sandboxes/{id}/resume"],
  ["post", "/v1/sandboxes/{id}/hibernate"],
  ["post", "/v1/sandboxes/{id}/fork"],
];

test("every route the SDK calls is documented with its method", () => {
  const missing = SDK_ROUTES.filter(([m, p]) => !doc.paths[p]?.[m]).map(([m, p]) => `${m.toUpperCase()} ${p}`);
  assert.deepEqual(missing, []);
  // And the list above covers the source: each route literal in src/ is one of them.
  const src = ["volume", "files", "sandbox", "transfer", "watch"].map((f) => readFileSync(join(PACKAGE_DIR, "src", `${f}.ts`), "utf8")).join("\n");
  const literals = [...src.matchAll(/`\/v1\/(volumes|sandboxes)[^`]*`|"\/v1\/[a-z/]+"/g)];
  assert.ok(literals.length >= 10, "the scan finds the SDK's route literals");
  for (const lit of literals) {
    const shape = lit[0]
      .replace(/^[`"]|[`"]$/g, "")
      .replace(/\$\{seg\(this\.#?volume\.name\)\}|\$\{seg\((this\.)?name\)\}|\$\{seg\(volume\)\}/g, "{name}")
      .replace(/\$\{seg\((this\.)?id\)\}/g, "{id}")
      .replace(/\$\{[^}]*\}$/, "");
    assert.ok(SDK_ROUTES.some(([, p]) => p.startsWith(shape)), `route ${lit[0]} is not in SDK_ROUTES`);
  }
});
