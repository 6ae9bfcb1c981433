// Reading a file a user names: only a regular file, and only up to a stated size, so that a
// device (/dev/zero), a FIFO or an oversized file is refused before anything is read into
// memory. Neutral: the DSL reads sources, the runtime weights, the CLI artifacts.
import { closeSync, constants, fstatSync, openSync, readSync, statSync } from "node:fs";
import { Diagnostic } from "./diagnostic.ts";

export function formatBytes(n: number): string {
  return `${n.toLocaleString("en-US")} bytes`;
}

function reason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return "no such file";
  if (code === "EACCES" || code === "EPERM") return "permission denied";
  if (code === "EISDIR") return "it is a directory";
  return (e as Error).message;
}

/**
 * The bytes of the regular file at `path`, at most `maxBytes` of them; `what` names the file's
 * role in diagnostics ("model source", "safetensors file").
 */
export function readRegularFile(path: string, maxBytes: number, what: string): Buffer {
  let fd: number;
  try {
    // Non-blocking, so that opening a FIFO with no writer returns at once (and is then refused).
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw new Diagnostic(`cannot read ${path}: ${reason(e)}`);
  }
  try {
    const stat = fstatSync(fd);
    if (stat.isDirectory()) throw new Diagnostic(`${path} is a directory, not a ${what}`);
    if (!stat.isFile()) throw new Diagnostic(`${path} is not a regular file (a device, FIFO or socket); a ${what} is read only from a regular file`);
    if (stat.size > maxBytes) throw new Diagnostic(`${path} is ${formatBytes(stat.size)}, more than the ${formatBytes(maxBytes)} a ${what} may be`);
    // Read what the file holds now, but never more than the limit, even if it grows meanwhile.
    const bytes = Buffer.alloc(stat.size);
    let filled = 0;
    while (filled < bytes.length) {
      const n = readSync(fd, bytes, filled, bytes.length - filled, null);
      if (n === 0) break;
      filled += n;
    }
    return filled === bytes.length ? bytes : bytes.subarray(0, filled);
  } catch (e) {
    if (e instanceof Diagnostic) throw e;
    throw new Diagnostic(`cannot read ${path}: ${reason(e)}`);
  } finally {
    closeSync(fd);
  }
}

/** Refuses an output path that is one of `inputs` (the same file, through any link or spelling). */
export function refuseToOverwrite(output: string, inputs: { path: string | undefined; what: string }[]): void {
  const identity = (p: string) => {
    try {
      const s = statSync(p);
      return `${s.dev}:${s.ino}`;
    } catch {
      return undefined;
    }
  };
  const out = identity(output);
  if (out === undefined) return;
  for (const input of inputs) if (input.path !== undefined && identity(input.path) === out) throw new Diagnostic(`-o ${output} is ${input.what}; refusing to overwrite it`);
}

/**
 * Runs `write` (synchronous) with SIGINT, SIGTERM and SIGHUP held back, so that an interrupt
 * lets it finish instead of leaving half of it; a signal that arrived is then acted on as usual.
 */
export function withSignalsDeferred(write: () => void): void {
  const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
  const release = () => {
    for (const s of signals) process.off(s, deliver);
  };
  // A signal caught during write() reaches this listener on the event loop's next poll, after
  // write() returned: stop holding signals and raise it again, now with its usual effect.
  const deliver = (s: NodeJS.Signals) => {
    release();
    process.kill(process.pid, s);
  };
  for (const s of signals) process.on(s, deliver);
  try {
    write();
  } finally {
    // Released only after the event loop has polled once more, not now: removing the listeners
    // drops a signal that is caught but not yet delivered. An immediate queued from an
    // immediate runs in the next loop iteration, after that iteration's poll has read it.
    setImmediate(() => setImmediate(release));
  }
}
