// The difftc command run in this process (runCli), with what it prints captured: much faster
// than a child process per case, and the same code path after argument parsing.
import { vi } from "vitest";
import { runCli } from "../../cli/run.ts";

export async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const spies = [
    vi.spyOn(console, "log").mockImplementation((s: string) => void out.push(s)),
    vi.spyOn(console, "error").mockImplementation((s: string) => void err.push(s)),
    vi.spyOn(process.stdout, "write").mockImplementation((s: string | Uint8Array) => out.push(String(s).trimEnd()) > 0),
    vi.spyOn(process.stderr, "write").mockImplementation((s: string | Uint8Array) => err.push(String(s).trimEnd()) > 0),
  ];
  try {
    return { code: await runCli(args), out: out.join("\n"), err: err.join("\n") };
  } finally {
    for (const spy of spies) spy.mockRestore();
  }
}
