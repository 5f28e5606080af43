// The quick example of the product page (SPEC "The quick example"), in TypeScript.
// Configured by NULLSPACE_API_URL / NULLSPACE_API_KEY (or the local server's client.json).
import { Sandbox, Volume } from "nullspace";

const volume = await Volume.fromName("team-data", { createIfMissing: true });
await volume.files.write("/hello.txt", "persistent\n");

await using sandbox = await Sandbox.create({ volumes: [volume.mount("/workspace/shared")] });
console.log((await sandbox.files.read("/workspace/shared/hello.txt")).trim());
