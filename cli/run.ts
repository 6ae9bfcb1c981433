// Process-level wrapper: a Diagnostic is printed with its caret and exits 1; anything else
// is a bug in difftc and says so.
import { Diagnostic, printable } from "../common/diagnostic.ts";
import { main } from "./main.ts";

export async function runCli(argv: string[]): Promise<number> {
  try {
    return await main(argv);
  } catch (e) {
    if (e instanceof Diagnostic) {
      console.error(e.format());
      return 1;
    }
    console.error(`difftc: internal error (a bug in difftc, please report it): ${printable(e instanceof Error ? e.message : String(e))}`);
    if (process.env.DIFFTC_DEBUG && e instanceof Error) console.error(e.stack);
    return 2;
  }
}
