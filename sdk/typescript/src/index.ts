/**
 * nullspace: the TypeScript SDK of nullspace Volumes, durable shared filesystems for
 * sandboxes. Zero runtime dependencies: Node 20+'s global `fetch` and `node:` modules.
 *
 * ```ts
 * import { Sandbox, Volume } from "nullspace";
 * const volume = await Volume.fromName("team-data", { createIfMissing: true });
 * await volume.files.write("/hello.txt", "persistent\n");
 * ```
 */
export { Client, configure, defaultClient, resetDefaultClient, type ClientOptions } from "./client.js";
export { resolveConfig, profilePath, bootstrapPath, DEFAULT_URL, type ResolvedConfig } from "./config.js";
export * from "./errors.js";
export {
  VolumeFiles,
  FileReadStream,
  SearchResults,
  type FileStat,
  type SearchMatch,
  type ReplaceResult,
  type BatchResult,
  type WriteData,
  type SearchOptions,
  type ReplaceOptions,
} from "./files.js";
export {
  Sandbox,
  SandboxFiles,
  SandboxVolumes,
  ExecResult,
  type SandboxInfo,
  type Attachment,
  type SandboxDirEntry,
  type SandboxCreateOptions,
  type ExecOptions,
} from "./sandbox.js";
export {
  TUS_VERSION,
  DEFAULT_TUS_CHUNK,
  recordName,
  recordsDir,
  type ProgressCallback,
  type UploadResult,
  type DownloadResult,
} from "./transfer.js";
export { VERSION } from "./version.js";
export {
  Volume,
  VOLUME_FIELDS,
  type VolumeInfo,
  type VolumeField,
  type PendingUpload,
  type Mount,
  type MountOptions,
} from "./volume.js";
export { Watch, type WatchEvent, type WatchOptions } from "./watch.js";
export type * as wire from "./wire.js";
