// README.md's TypeScript blocks, in order, as one program: type-checked with this package's
// compiler options, then run against a fresh server configured only by the environment.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";

import ts from "typescript";

import { PACKAGE_DIR, startServer, type TestServer } from "./server.js";

let server: TestServer;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

/** The ```ts blocks of a Markdown text, in order. */
export function tsBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

test("README.md's code blocks type-check and run in order against a fresh server", { timeout: 120_000 }, () => {
  const blocks = tsBlocks(readFileSync(join(PACKAGE_DIR, "README.md"), "utf8"));
  assert.ok(blocks.length >= 8, `found ${blocks.length} blocks`);
  // Inside the package, so that `import ... from "nullspace"` resolves to this package.
  const dir = mkdtempSync(join(PACKAGE_DIR, "dist", "readme-"));
  try {
    runBlocks(blocks, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function runBlocks(blocks: string[], dir: string): void {
  const file = join(dir, "readme.ts");
  writeFileSync(file, blocks.map((b, i) => `// ---- block ${i + 1}\n${b}`).join("\n"));

  const config = ts.getParsedCommandLineOfConfigFile(join(PACKAGE_DIR, "tsconfig.json"), {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => assert.fail(ts.flattenDiagnosticMessageText(d.messageText, "\n")),
  });
  assert.ok(config);
  const options = { ...config.options, rootDir: dir, outDir: dir, declaration: false, sourceMap: false };
  const program = ts.createProgram([file], options);
  const diagnostics = ts.getPreEmitDiagnostics(program).concat(program.emit().diagnostics);
  const text = diagnostics.map((d) => {
    const where = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : null;
    return `${where ? `readme.ts:${where.line + 1}: ` : ""}${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`;
  });
  assert.deepEqual(text, [], "README blocks must type-check");

  const cwd = join(server.tmp, "readme-cwd");
  mkdirSync(cwd);
  const env: Record<string, string> = { PATH: process.env["PATH"] ?? "", HOME: server.tmp };
  env["NULLSPACE_API_URL"] = server.url;
  env["NULLSPACE_API_KEY"] = server.key;
  const run = spawnSync(process.execPath, [join(dir, "readme.js")], { cwd, env, encoding: "utf8", timeout: 100_000 });
  assert.equal(run.stderr, "", "no error output");
  assert.equal(run.status, 0);
  const out = run.stdout;
  for (const expected of [
    "persistent\n",
    "http://localhost:7420 argument\n",
    "[ 'ml-data' ]\n",
    "created /inbox/job-1.json\n",
    "uploaded 3145728 of 3145728\n",
    "copy.bin persistent\n",
    "persistent\nbatch\n 0\n",
    "mounted 3\n",
    "not_found 404\n",
  ]) {
    assert.ok(out.includes(expected), `output lacks ${JSON.stringify(expected)}:\n${out}`);
  }
  assert.ok(!out.includes("nsk_example"), "the key is never printed");
}
