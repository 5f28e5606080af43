/** Volumes: durable shared filesystems, created once by name and used from anywhere. */
import { checkBool, checkPath, checkStringMap, checkVolumeName, seg } from "./checks.js";
import { resolveClient, type Client } from "./client.js";
import { NotFoundError } from "./errors.js";
import { VolumeFiles } from "./files.js";
import { TUS_VERSION } from "./transfer.js";
import type * as wire from "./wire.js";

/** A volume's fields (`wire.Volume`); fields left out of a `fields` selection are absent. */
export type VolumeInfo = Partial<wire.Volume>;
/** A resumable upload still waiting for bytes. */
export type PendingUpload = wire.UploadInfo;

/** Every field of a volume; `fields: [...]` selects among these. */
export const VOLUME_FIELDS = [
  "id",
  "name",
  "created_at",
  "updated_at",
  "cap_bytes",
  "used_bytes",
  "file_count",
  "labels",
  "state",
  "attachments",
  "pending_upload_bytes",
] as const satisfies ReadonlyArray<keyof wire.Volume>;
export type VolumeField = (typeof VOLUME_FIELDS)[number];

const FORBIDDEN_MOUNT_ROOTS = ["/proc", "/sys", "/dev"];

/** A request to mount a volume into a sandbox; made by {@link Volume.mount}. */
export interface Mount {
  /** The volume's name. */
  readonly volume: string;
  /** Absolute, normalised mount path inside the sandbox. */
  readonly path: string;
  /** Writers get `EROFS`. */
  readonly readOnly: boolean;
  /** A directory inside the volume to expose instead of its root (relative), or `null`. */
  readonly subpath: string | null;
  /** The volume's id, when known. */
  readonly volumeId?: string;
}

/** Options of {@link Volume.mount}. */
export interface MountOptions {
  readOnly?: boolean;
  subpath?: string | null;
}

/** The `client` option every class-level call takes (default: {@link defaultClient}). */
export interface WithClient {
  client?: Client;
}

function checkFields(fields: readonly string[] | undefined): string | undefined {
  if (fields === undefined) return undefined;
  if (!Array.isArray(fields)) throw new TypeError("fields must be an array of field names");
  if (fields.length === 0) throw new RangeError("fields must name at least one field (or be left out for all)");
  for (const f of fields) {
    if (!(VOLUME_FIELDS as readonly string[]).includes(f))
      throw new RangeError(`unknown volume field ${JSON.stringify(f)}; valid fields: ${VOLUME_FIELDS.join(", ")}`);
  }
  return [...new Set(fields)].join(",");
}

/** Validates a mount path: absolute, no `..`, not `/`, not under /proc, /sys or /dev. */
export function checkMountPath(path: unknown): string {
  if (typeof path !== "string") throw new TypeError(`mount path must be a string, not ${typeof path}`);
  if (!path.startsWith("/")) throw new RangeError(`mount path ${JSON.stringify(path)} must be absolute, like '/workspace/data'`);
  const norm = checkPath(path, "mount path");
  if (norm === "/") throw new RangeError("a volume cannot be mounted at '/'");
  for (const root of FORBIDDEN_MOUNT_ROOTS) {
    if (norm === root || norm.startsWith(root + "/")) throw new RangeError(`mount path ${JSON.stringify(norm)} is under ${root}, which is reserved`);
  }
  return norm;
}

function checkSubpath(subpath: unknown): string | null {
  if (subpath === undefined || subpath === null) return null;
  if (typeof subpath !== "string") throw new TypeError(`subpath must be a string, not ${typeof subpath}`);
  const parts = checkPath("/" + subpath, "subpath").split("/").filter(Boolean);
  if (parts.length === 0) throw new RangeError(`subpath ${JSON.stringify(subpath)} names the volume root; leave it out instead`);
  return parts.join("/");
}

/**
 * A handle on one volume of the current tenant. Get one with {@link Volume.fromName} or
 * {@link Volume.create}; manage its files through {@link Volume.files} and mount it into
 * sandboxes with {@link Volume.mount}.
 */
export class Volume {
  readonly name: string;
  readonly id: string;
  readonly client: Client;
  /** The direct file API of this volume (no sandbox needed). */
  readonly files: VolumeFiles;

  /** Wraps an existing volume; prefer {@link Volume.fromName}, which checks that it exists. */
  constructor(name: string, id: string, options: WithClient = {}) {
    this.name = checkVolumeName(name);
    if (typeof id !== "string") throw new TypeError("id must be a string");
    this.id = id;
    this.client = resolveClient(options.client);
    this.files = new VolumeFiles(this);
  }

  /** Looks a volume up by name, creating it when `createIfMissing`. `NotFoundError` otherwise. */
  static async fromName(name: string, options: { createIfMissing?: boolean } & WithClient = {}): Promise<Volume> {
    checkVolumeName(name);
    const create = checkBool("createIfMissing", options.createIfMissing ?? false);
    const c = resolveClient(options.client);
    const doc = create
      ? await c.requestJson<wire.Volume>("POST", "/v1/volumes", {
          json: { name, labels: {}, if_not_exists: true } satisfies wire.CreateVolume,
          idempotent: true,
        })
      : await c.requestJson<wire.Volume>("GET", `/v1/volumes/${seg(name)}`, { query: { fields: "id,name" } });
    return new Volume(doc.name, doc.id, { client: c });
  }

  /** Creates a new volume (`AlreadyExistsError` if the tenant has one of that name). */
  static async create(name: string, options: { labels?: Record<string, string> } & WithClient = {}): Promise<Volume> {
    checkVolumeName(name);
    const labels = checkStringMap("labels", options.labels);
    const c = resolveClient(options.client);
    const doc = await c.requestJson<wire.Volume>("POST", "/v1/volumes", {
      json: { name, labels, if_not_exists: false } satisfies wire.CreateVolume,
    });
    return new Volume(doc.name, doc.id, { client: c });
  }

  /** This tenant's volumes, optionally only those carrying all of `labels`. */
  static async list(
    options: { labels?: Record<string, string>; fields?: readonly VolumeField[] } & WithClient = {},
  ): Promise<VolumeInfo[]> {
    const labels = checkStringMap("labels", options.labels);
    const fields = checkFields(options.fields);
    const query: Array<[string, unknown]> = Object.entries(labels).map(([k, v]) => ["label", `${k}=${v}`]);
    if (fields) query.push(["fields", fields]);
    const doc = await resolveClient(options.client).requestJson<wire.VolumeList>("GET", "/v1/volumes", { query });
    return doc.volumes;
  }

  /**
   * Deletes a volume and all its files. `force` releases live sandbox attachments first
   * (otherwise `VolumeInUseError`); `ifExists` succeeds when there is no such volume.
   */
  static async delete(name: string, options: { force?: boolean; ifExists?: boolean } & WithClient = {}): Promise<void> {
    checkVolumeName(name);
    const query = { force: checkBool("force", options.force ?? false), if_exists: checkBool("ifExists", options.ifExists ?? false) };
    await resolveClient(options.client).requestVoid("DELETE", `/v1/volumes/${seg(name)}`, { query });
  }

  /** Fresh fields of this volume from the server (`NotFoundError` once it was deleted). */
  async info(options: { fields?: readonly VolumeField[] } = {}): Promise<VolumeInfo> {
    const fields = checkFields(options.fields);
    const info = await this.client.requestJson<VolumeInfo>("GET", `/v1/volumes/${seg(this.name)}`, {
      query: fields ? { fields } : undefined,
    });
    if (info.id !== undefined && info.id !== this.id)
      throw new NotFoundError(`volume ${JSON.stringify(this.name)} (${this.id}) was deleted; a new volume now has that name (${info.id})`);
    return info;
  }

  /** Resumable uploads still waiting for bytes, oldest first (each reserves its length against the cap). */
  async uploads(): Promise<PendingUpload[]> {
    const doc = await this.client.requestJson<wire.UploadList>("GET", `/v1/volumes/${seg(this.name)}/uploads`);
    return doc.uploads;
  }

  /** Cancels a pending upload (tus termination); its reserved bytes are free again. */
  async cancelUpload(id: string): Promise<void> {
    await this.client.requestVoid("DELETE", `/v1/volumes/${seg(this.name)}/uploads/${seg(id)}`, {
      headers: { "tus-resumable": TUS_VERSION },
    });
  }

  /** Describes mounting this volume at `path` in a sandbox (`Sandbox.create({ volumes: [...] })`). */
  mount(path: string, options: MountOptions = {}): Mount {
    return {
      volume: this.name,
      path: checkMountPath(path),
      readOnly: checkBool("readOnly", options.readOnly ?? false),
      subpath: checkSubpath(options.subpath),
      volumeId: this.id,
    };
  }

  toString(): string {
    return `Volume(${this.name}, ${this.id})`;
  }
}
