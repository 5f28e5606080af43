/** Sandboxes: create with volumes mounted, run commands, attach and detach volumes, lifecycle. */
import { checkStringMap, seg } from "./checks.js";
import { resolveClient, type Client } from "./client.js";
import type { Mount, WithClient } from "./volume.js";
import type * as wire from "./wire.js";

/** A sandbox record (`state`: running, paused or hibernated). */
export type SandboxInfo = wire.Sandbox;
/** One attachment of a volume to a sandbox (`state`: mounted, released or failed). */
export type Attachment = wire.Attachment;
/** An entry of a sandbox directory listing. */
export type SandboxDirEntry = wire.SandboxDirEntry;

/** Options of {@link Sandbox.create}. */
export interface SandboxCreateOptions extends WithClient {
  /** The template (default `base`). */
  template?: string;
  /** Volumes to mount: `[volume.mount("/workspace/data")]`. */
  volumes?: readonly Mount[];
  name?: string | null;
  env?: Record<string, string>;
  /** Lifetime in seconds: destroyed that long after creation (volumes kept). */
  timeout?: number | null;
  /** CPU quota in cores (fractions allowed). */
  cpu?: number | null;
  /** Hard memory limit: bytes or a size such as `"512MiB"`. */
  memory?: number | string | null;
  /** Cap of the sandbox's own writable layer: bytes or a size. */
  disk?: number | string | null;
  /** `namespace` (default) or `gvisor`. */
  runtime?: "namespace" | "gvisor" | null;
}

/** Options of {@link Sandbox.exec}. */
export interface ExecOptions {
  env?: Record<string, string>;
  cwd?: string | null;
  stdin?: string | null;
  /** Seconds; the command's process group is killed then (`timedOut`, exit code 137). */
  timeout?: number | null;
}

/** What a command did. */
export class ExecResult {
  /** Standard output as text (`""` when it was not UTF-8 text; see {@link stdoutBytes}). */
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
  /** Killed at its timeout. */
  readonly timedOut: boolean;
  /** The output passed the answer's budget (8 MiB encoded, both streams) and was cut. */
  readonly truncated: boolean;
  /** The sandbox reached its memory limit while the command ran. */
  readonly oomKilled: boolean;
  readonly #raw: wire.ExecOutput;

  constructor(raw: wire.ExecOutput) {
    this.#raw = raw;
    this.stdout = raw.stdout;
    this.stderr = raw.stderr;
    this.exitCode = raw.exit_code;
    this.timedOut = raw.timed_out ?? false;
    this.truncated = raw.truncated ?? false;
    this.oomKilled = raw.oom_killed ?? false;
  }

  /** Standard output's bytes, text or not. */
  get stdoutBytes(): Uint8Array {
    return streamBytes(this.#raw.stdout, this.#raw.stdout_base64);
  }

  /** Standard error's bytes, text or not. */
  get stderrBytes(): Uint8Array {
    return streamBytes(this.#raw.stderr, this.#raw.stderr_base64);
  }
}

function streamBytes(text: string, b64: string | null | undefined): Uint8Array {
  return b64 == null ? new TextEncoder().encode(text) : new Uint8Array(Buffer.from(b64, "base64"));
}

function mountBody(m: Mount): wire.VolumeMount {
  if (!m || typeof m !== "object" || typeof m.volume !== "string" || typeof m.path !== "string")
    throw new TypeError("expected a Mount (from volume.mount(...))");
  return { volume: m.volume, mount_path: m.path, read_only: m.readOnly, subpath: m.subpath };
}

/** Files as the sandbox sees them (its own filesystem and its mounted volumes). */
export class SandboxFiles {
  readonly #sb: Sandbox;

  constructor(sandbox: Sandbox) {
    this.#sb = sandbox;
  }

  /** The whole file at `path` (absolute, inside the sandbox). */
  async readBytes(path: string): Promise<Uint8Array> {
    const r = await this.#sb.client.request("GET", this.#sb.path("/files/content"), { query: { path } });
    return new Uint8Array(await r.arrayBuffer());
  }

  /** The whole file decoded as UTF-8. */
  async read(path: string): Promise<string> {
    return new TextDecoder().decode(await this.readBytes(path));
  }

  /** Writes `data` to `path` inside the sandbox (replacing it). */
  async write(path: string, data: string | Uint8Array): Promise<void> {
    if (typeof data !== "string" && !(data instanceof Uint8Array)) throw new TypeError("data must be a string or Uint8Array");
    await this.#sb.client.requestVoid("PUT", this.#sb.path("/files/content"), {
      query: { path },
      body: data,
      headers: { "content-type": "application/octet-stream" },
    });
  }

  /** Entries of a directory: `{name, kind, size}`. */
  async list(path = "/"): Promise<SandboxDirEntry[]> {
    const doc = await this.#sb.client.requestJson<wire.SandboxDirList>("GET", this.#sb.path("/files/list"), { query: { path } });
    return doc.entries;
  }
}

/** The volumes attached to a sandbox. */
export class SandboxVolumes {
  readonly #sb: Sandbox;

  constructor(sandbox: Sandbox) {
    this.#sb = sandbox;
  }

  /** Mounts a volume into the running sandbox. */
  async attach(mount: Mount): Promise<Attachment> {
    return this.#sb.client.requestJson<Attachment>("POST", this.#sb.path("/attachments"), { json: mountBody(mount), idempotent: false });
  }

  /** Releases the volume mounted at `mountPath`; its data stays in the volume. */
  async detach(mountPath: string): Promise<Attachment> {
    return this.#sb.client.requestJson<Attachment>("DELETE", this.#sb.path("/attachments"), { query: { mount_path: mountPath } });
  }

  /** Every attachment record of the sandbox. */
  async list(): Promise<Attachment[]> {
    return (await this.#sb.client.requestJson<wire.AttachmentList>("GET", this.#sb.path("/attachments"))).attachments;
  }
}

/**
 * A sandbox of the current tenant. `await using sandbox = await Sandbox.create(...)` destroys
 * it when the scope ends (or call {@link Sandbox.destroy}).
 */
export class Sandbox implements AsyncDisposable {
  readonly id: string;
  readonly client: Client;
  /** Files inside the sandbox. */
  readonly files: SandboxFiles;
  /** Runtime attachment of volumes. */
  readonly volumes: SandboxVolumes;

  /** Wraps an existing sandbox id; prefer {@link Sandbox.connect}, which checks it exists. */
  constructor(id: string, options: WithClient = {}) {
    if (typeof id !== "string" || !id) throw new TypeError("id must be a non-empty string");
    this.id = id;
    this.client = resolveClient(options.client);
    this.files = new SandboxFiles(this);
    this.volumes = new SandboxVolumes(this);
  }

  /** Creates and starts a sandbox with `volumes` mounted. */
  static async create(options: SandboxCreateOptions = {}): Promise<Sandbox> {
    const c = resolveClient(options.client);
    const body: wire.CreateSandbox = {
      template: options.template ?? "base",
      volumes: (options.volumes ?? []).map(mountBody),
      name: options.name ?? null,
      env: checkStringMap("env", options.env),
      timeout: options.timeout ?? null,
    };
    if (options.cpu != null) body.cpu = options.cpu;
    if (options.memory != null) body.memory = options.memory;
    if (options.disk != null) body.disk = options.disk;
    if (options.runtime != null) body.runtime = options.runtime;
    const doc = await c.requestJson<SandboxInfo>("POST", "/v1/sandboxes", { json: body, idempotent: false, timeout: 0 });
    return new Sandbox(doc.id, { client: c });
  }

  /** An existing sandbox by id (`NotFoundError` when there is none). */
  static async connect(id: string, options: WithClient = {}): Promise<Sandbox> {
    const sb = new Sandbox(id, options);
    await sb.info();
    return sb;
  }

  /** This tenant's sandboxes. */
  static async list(options: WithClient = {}): Promise<SandboxInfo[]> {
    return (await resolveClient(options.client).requestJson<wire.SandboxList>("GET", "/v1/sandboxes")).sandboxes;
  }

  /** The API path of this sandbox (`rest` appended). */
  path(rest = ""): string {
    return `/v1/sandboxes/${seg(this.id)}${rest}`;
  }

  /** The sandbox's current record. */
  async info(): Promise<SandboxInfo> {
    return this.client.requestJson<SandboxInfo>("GET", this.path());
  }

  /** Runs `cmd` (an argument list, or a string run by `sh -c`) and waits for it. */
  async exec(cmd: string | readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    if (typeof cmd !== "string" && !(Array.isArray(cmd) && cmd.every((a) => typeof a === "string")))
      throw new TypeError("cmd must be a string or an array of strings");
    const body: wire.ExecRequest = {
      cmd: typeof cmd === "string" ? cmd : [...cmd],
      env: checkStringMap("env", options.env),
      cwd: options.cwd ?? null,
      stdin: options.stdin ?? null,
      timeout: options.timeout ?? null,
    };
    const doc = await this.client.requestJson<wire.ExecOutput>("POST", this.path("/exec"), { json: body, idempotent: false, timeout: 0 });
    return new ExecResult(doc);
  }

  async #lifecycle(op: string): Promise<SandboxInfo> {
    return this.client.requestJson<SandboxInfo>("POST", this.path(`/${op}`), { idempotent: false, timeout: 0 });
  }

  /** Freezes the sandbox's processes; its mounts are released until resume. */
  pause(): Promise<SandboxInfo> {
    return this.#lifecycle("pause");
  }

  /** Resumes a paused or hibernated sandbox, remounting its volumes. */
  resume(): Promise<SandboxInfo> {
    return this.#lifecycle("resume");
  }

  /** Frees the sandbox's memory, keeping its filesystem (and, on gvisor, its processes). */
  hibernate(): Promise<SandboxInfo> {
    return this.#lifecycle("hibernate");
  }

  /** A new sandbox from a copy of this one's filesystem, with the same volumes mounted. */
  async fork(): Promise<Sandbox> {
    return new Sandbox((await this.#lifecycle("fork")).id, { client: this.client });
  }

  /** Destroys the sandbox; its volumes and their data stay. */
  async destroy(): Promise<void> {
    await this.client.requestVoid("DELETE", this.path(), { timeout: 0 });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.destroy();
  }

  toString(): string {
    return `Sandbox(${this.id})`;
  }
}
