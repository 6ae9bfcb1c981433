// The WebGPU device the runtime and the tests share: one per process, created lazily and cached.
//
// In a browser (or anywhere `navigator.gpu` exists) it comes from `navigator.gpu`. In Node it
// comes from Dawn through the npm package `webgpu`. On machines without a GPU, Dawn runs on a
// CPU Vulkan driver: SwiftShader, which Debian's `chromium` package installs
// (/usr/lib/chromium/vk_swiftshader_icd.json), or Mesa's lavapipe 25 (bookworm-backports; the
// Mesa 22 of bookworm proper is refused by Dawn). When the user has not chosen a Vulkan driver
// (VK_ICD_FILENAMES / VK_DRIVER_FILES unset) and Dawn finds no usable one, SwiftShader is used.
//
// Node-only modules are reached through process.getBuiltinModule and a dynamic import, so that
// this file also loads in a browser.

/** The shared device, a one-line description of its adapter, and the features it was given. */
export interface GpuDevice {
  device: GPUDevice;
  /** e.g. "google swiftshader / SwiftShader driver 5.0.0 (fallback adapter; Dawn, Vulkan ICD: ...)". */
  adapterInfo: string;
  /** The device's features, sorted. */
  features: string[];
}

/** SwiftShader's Vulkan ICD as Debian's chromium package installs it. */
export const SWIFTSHADER_ICD = "/usr/lib/chromium/vk_swiftshader_icd.json";

/** What to install when no adapter is found (Node). */
export const WEBGPU_INSTALL_HINT =
  "install a CPU Vulkan driver: Debian's chromium package brings SwiftShader " +
  `(apt-get install --no-install-recommends chromium; ${SWIFTSHADER_ICD} is then used automatically), ` +
  "or Mesa's lavapipe 25 from bookworm-backports (add the bookworm-backports suite to apt's sources, then " +
  "apt-get install -t bookworm-backports mesa-vulkan-drivers; the Mesa 22 of bookworm proper is refused by Dawn)";

/** Features asked for whenever the adapter has them. */
const WANTED_FEATURES: readonly GPUFeatureName[] = ["shader-f16", "subgroups", "timestamp-query"];

/** Limits that must be raised to the adapter's (the defaults are small); the others are raised too when accepted. */
const KEY_LIMITS = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxStorageBuffersPerShaderStage",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ",
  "maxComputeWorkgroupsPerDimension",
  "maxUniformBufferBindingSize",
  "maxBindingsPerBindGroup",
] as const;

/** An error whose message says it all: printed without a stack. */
export class WebGPUUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WebGPUUnavailableError";
    this.stack = `${this.name}: ${message}`;
  }
}

// Everything returned by the `webgpu` package's create(): Dawn crashes if one is garbage-collected,
// so they stay referenced for the life of the process.
const dawnInstances: GPU[] = [];
let cached: Promise<GpuDevice> | undefined;
/** The outcome of the last attempt, for the synchronous check. */
let settled: { ok: true } | { ok: false; why: string } | undefined;

/**
 * The process's WebGPU device (created on first call, then cached). Rejects with a
 * WebGPUUnavailableError saying what to install when there is no adapter. If the device is
 * lost, the next call makes a new one.
 */
/** The GPU (navigator.gpu, or Dawn's) the process's device came from: other WebGPU libraries, such as the benchmark peers, get theirs from it. */
export async function gpuInstance(): Promise<GPU> {
  await gpuDevice();
  return browserGpu() ?? dawnInstances[dawnInstances.length - 1];
}

export function gpuDevice(): Promise<GpuDevice> {
  if (cached) return cached;
  const p = createDevice();
  cached = p;
  p.then(
    (d) => {
      settled = { ok: true };
      void d.device.lost.then(() => {
        if (cached === p) {
          cached = undefined;
          settled = undefined;
        }
      });
    },
    (e: unknown) => {
      settled = { ok: false, why: e instanceof Error ? e.message : String(e) };
    },
  );
  return p;
}

/** Why WebGPU cannot run here, or undefined when it can. Gets (and caches) the device to find out. */
export async function webgpuUnavailable(): Promise<string | undefined> {
  try {
    await gpuDevice();
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/**
 * A cheap synchronous check: the answer of gpuDevice() once it has settled; before that, whether
 * the parts are in place (navigator.gpu; or the `webgpu` package and a Vulkan driver to try).
 * It cannot tell a driver Dawn will refuse (bookworm's lavapipe) from one it accepts.
 */
export function webgpuUnavailableSync(): string | undefined {
  if (settled) return settled.ok ? undefined : settled.why;
  if (browserGpu()) return undefined;
  if (!isNode()) return "WebGPU is not available here: no navigator.gpu";
  const fs = nodeFs();
  const path = nodePath();
  const { createRequire } = process.getBuiltinModule("node:module");
  let pkgDir: string;
  try {
    pkgDir = path.dirname(createRequire(import.meta.url).resolve("webgpu/package.json"));
  } catch {
    return "the npm package `webgpu` (Dawn) is not installed: npm install webgpu (an optional peer of difftc)";
  }
  const arch = process.platform === "darwin" ? "universal" : process.arch;
  if (!fs.existsSync(path.join(pkgDir, "dist", `${process.platform}-${arch}`, "dawn.node"))) {
    return `the npm package \`webgpu\` has no Dawn build for ${process.platform}-${arch}`;
  }
  if (process.platform !== "linux") return undefined;
  if (userChoseVulkanDriver() || vulkanIcds().length > 0 || fs.existsSync(SWIFTSHADER_ICD)) return undefined;
  return `WebGPU: no Vulkan driver found for Dawn; ${WEBGPU_INSTALL_HINT}`;
}

function isNode(): boolean {
  return typeof process !== "undefined" && typeof process.versions?.node === "string";
}

function browserGpu(): GPU | undefined {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  return nav?.gpu ?? undefined;
}

function nodeFs() {
  return process.getBuiltinModule("node:fs");
}
function nodePath() {
  return process.getBuiltinModule("node:path");
}

function userChoseVulkanDriver(): boolean {
  return !!(process.env.VK_ICD_FILENAMES || process.env.VK_DRIVER_FILES);
}

/** The Vulkan ICD manifests the loader would find by itself (its Linux search paths). */
function vulkanIcds(): string[] {
  const fs = nodeFs();
  const path = nodePath();
  const dataHome = process.env.XDG_DATA_HOME || (process.env.HOME ? path.join(process.env.HOME, ".local/share") : undefined);
  const dirs = [
    ...(process.env.XDG_CONFIG_DIRS || "/etc/xdg").split(":"),
    "/etc",
    ...(dataHome ? [dataHome] : []),
    ...(process.env.XDG_DATA_DIRS || "/usr/local/share:/usr/share").split(":"),
  ];
  const found = new Set<string>();
  for (const dir of dirs) {
    if (!dir) continue;
    const icdDir = path.join(dir, "vulkan", "icd.d");
    let names: string[] = [];
    try {
      names = fs.readdirSync(icdDir);
    } catch {
      continue;
    }
    for (const n of names) if (n.endsWith(".json")) found.add(path.join(icdDir, n));
  }
  return [...found].sort();
}

/** Dawn's create() options: DIFFTC_DAWN_OPTIONS, separated by ';' (e.g. "backend=vulkan;enable-dawn-features=dump_shaders"). */
function dawnOptions(): string[] {
  return (process.env.DIFFTC_DAWN_OPTIONS ?? "")
    .split(";")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

async function createDevice(): Promise<GpuDevice> {
  const browser = browserGpu();
  if (browser) {
    const adapter = await browser.requestAdapter();
    if (!adapter) {
      throw new WebGPUUnavailableError(
        "WebGPU: navigator.gpu.requestAdapter() returned no adapter (in headless Chromium on Linux, launch with --enable-unsafe-webgpu)",
      );
    }
    return openDevice(adapter, "navigator.gpu");
  }
  if (!isNode()) {
    throw new WebGPUUnavailableError(
      "WebGPU is not available here: no navigator.gpu (it needs a secure context such as http://127.0.0.1 or https, not about:blank)",
    );
  }
  return createDawnDevice();
}

async function createDawnDevice(): Promise<GpuDevice> {
  const fs = nodeFs();
  const path = nodePath();
  const os = process.getBuiltinModule("node:os");
  // Dawn (through the Vulkan loader and its layers) wants a runtime directory.
  if (!process.env.XDG_RUNTIME_DIR) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "difftc-xdg-"));
    process.env.XDG_RUNTIME_DIR = dir;
    process.once("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
  }

  type WebgpuModule = { create(options: string[]): GPU; globals: Record<string, unknown> };
  let mod: WebgpuModule;
  const specifier = "webgpu"; // a variable, so that bundlers leave it alone
  try {
    mod = (await import(/* @vite-ignore */ specifier)) as WebgpuModule;
  } catch (e) {
    throw new WebGPUUnavailableError(
      `WebGPU: the npm package \`webgpu\` (Dawn) could not be loaded (${e instanceof Error ? e.message.split("\n")[0] : String(e)}): npm install webgpu (an optional peer of difftc)`,
    );
  }
  // GPUBufferUsage, GPUMapMode, ... as in a browser, where not already defined.
  for (const [k, v] of Object.entries(mod.globals)) {
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  }

  const options = dawnOptions();
  const tried: string[] = [];
  const attempt = async (label: string): Promise<GPUAdapter | null> => {
    let gpu: GPU;
    try {
      gpu = mod.create(options);
    } catch (e) {
      tried.push(`${label}: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}`);
      return null;
    }
    dawnInstances.push(gpu);
    let adapter: GPUAdapter | null = null;
    try {
      adapter = await gpu.requestAdapter();
    } catch (e) {
      tried.push(`${label}: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}`);
      return null;
    }
    if (!adapter) tried.push(`${label}: no adapter`);
    return adapter;
  };

  let icdNote: string;
  let adapter: GPUAdapter | null = null;
  const swiftshader = process.platform === "linux" && fs.existsSync(SWIFTSHADER_ICD);
  if (userChoseVulkanDriver()) {
    const chosen = process.env.VK_ICD_FILENAMES || process.env.VK_DRIVER_FILES;
    icdNote = `Vulkan ICD: ${chosen} (user's)`;
    adapter = await attempt(`Vulkan drivers ${chosen}`);
  } else {
    const icds = process.platform === "linux" ? vulkanIcds() : [];
    icdNote = "system Vulkan drivers";
    if (process.platform !== "linux" || icds.length > 0 || !swiftshader) {
      adapter = await attempt(icds.length > 0 ? `system Vulkan drivers (${icds.join(", ")})` : "system drivers");
    }
    if (!adapter && swiftshader) {
      // No usable driver of the system's own (none, or one Dawn refuses, as bookworm's lavapipe):
      // the Vulkan loader reads VK_ICD_FILENAMES when each Dawn instance is created.
      process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
      icdNote = `Vulkan ICD: ${SWIFTSHADER_ICD}`;
      adapter = await attempt(`SwiftShader (${SWIFTSHADER_ICD})`);
    }
  }
  if (!adapter) {
    const chose = userChoseVulkanDriver() && process.env.VK_ICD_FILENAMES !== SWIFTSHADER_ICD;
    throw new WebGPUUnavailableError(
      `WebGPU: Dawn found no usable adapter (tried ${tried.join("; ")}); ` +
        (chose ? "check that VK_ICD_FILENAMES / VK_DRIVER_FILES name a working Vulkan driver, or unset them and " : "") +
        WEBGPU_INSTALL_HINT,
    );
  }
  return openDevice(adapter, `Dawn, ${icdNote}`);
}

async function openDevice(adapter: GPUAdapter, via: string): Promise<GpuDevice> {
  const requiredFeatures = WANTED_FEATURES.filter((f) => adapter.features.has(f));
  // Every limit the adapter offers, at the adapter's value (for min* limits that is the best too).
  const all: Record<string, number> = {};
  for (const key in adapter.limits) {
    const v = (adapter.limits as unknown as Record<string, unknown>)[key];
    if (typeof v === "number") all[key] = v;
  }
  const key: Record<string, number> = {};
  for (const k of KEY_LIMITS) if (typeof all[k] === "number") key[k] = all[k];

  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures, requiredLimits: all, label: "difftc" });
  } catch {
    // An implementation may list a limit it does not accept back: ask for the ones that matter.
    try {
      device = await adapter.requestDevice({ requiredFeatures, requiredLimits: key, label: "difftc" });
    } catch (e) {
      throw new WebGPUUnavailableError(`WebGPU: requestDevice failed: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}`);
    }
  }
  const features = [...device.features].map(String).sort();
  return { device, adapterInfo: describeAdapter(adapter, via), features };
}

function describeAdapter(adapter: GPUAdapter, via: string): string {
  const info = adapter.info;
  const parts = [info.vendor, info.architecture, info.device, info.description]
    .map((s) => (s ?? "").trim())
    .filter((s, i, a) => s.length > 0 && a.indexOf(s) === i);
  const fallback = (info as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter ? "fallback adapter; " : "";
  return `${parts.join(" / ") || "unknown adapter"} (${fallback}${via})`;
}
