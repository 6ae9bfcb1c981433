// WebGPU for the peers that run on it (onnxruntime-web's WebGPU execution provider,
// tfjs-backend-webgpu) in Node: navigator.gpu set to the Dawn instance difftc's own device came
// from, so that every implementation runs on the same adapter.
import { gpuDevice, gpuInstance } from "../../runtime/adapters/webgpu/device.ts";

let ready: Promise<string> | undefined;

/** Sets navigator.gpu (once) and returns the adapter's description, for the benchmark's output. */
export function provideNavigatorGpu(): Promise<string> {
  ready ??= (async () => {
    const gpu = await gpuInstance();
    const { device, adapterInfo } = await gpuDevice();
    const nav = ((globalThis as { navigator?: object }).navigator ??= {}) as { gpu?: GPU };
    if (!nav.gpu) Object.defineProperty(nav, "gpu", { value: gpu, configurable: true });
    // Dawn for Node rejects views of a SharedArrayBuffer, which onnxruntime-web's wasm heap is: copy them.
    const queue = Object.getPrototypeOf(device.queue) as GPUQueue;
    const writeBuffer = queue.writeBuffer;
    queue.writeBuffer = function (this: GPUQueue, buffer: GPUBuffer, offset: number, data: BufferSource | SharedArrayBuffer, dataOffset?: number, size?: number) {
      const view = ArrayBuffer.isView(data) ? data : new Uint8Array(data as ArrayBuffer);
      const copy = view.buffer instanceof SharedArrayBuffer ? new (view.constructor as Uint8ArrayConstructor)(view as Uint8Array) : view;
      return writeBuffer.call(this, buffer, offset, copy as BufferSource, dataOffset, size);
    } as GPUQueue["writeBuffer"];
    return adapterInfo;
  })();
  return ready;
}

/**
 * Runs `work` with a live timer: onnxruntime-web's first WebGPU run waits on a callback that
 * Node only delivers while the event loop has something scheduled (it stalls about 30 s otherwise).
 */
export async function withLiveTimer<T>(work: () => Promise<T>): Promise<T> {
  const timer = setInterval(() => {}, 5);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}
