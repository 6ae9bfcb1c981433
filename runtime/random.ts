// Seeded random numbers for weight initialisation and test inputs. xoshiro128** seeded
// through splitmix32: pure 32-bit integer math (Math.imul, >>>), so the bit stream is the
// same on every platform and engine. Each tensor gets its own stream derived from
// (seed, key), so a parameter's values depend on the seed and its name only, not on the
// order parameters are declared in or on how many values other tensors drew.
import { Diagnostic } from "../common/diagnostic.ts";

/** One step of splitmix32: advances `state` and returns a well-mixed word. */
function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** murmur3's finaliser: spreads every input bit over the whole word. */
function fmix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function checkSeed(seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new Diagnostic(`seed must be a non-negative integer, got ${seed}`);
  }
}

/** A 32-bit stream seed from (seed, key): both halves of the seed, then each code unit. */
export function streamSeed(seed: number, key: string): number {
  checkSeed(seed);
  let h = fmix32((seed >>> 0) ^ 0x2545f491);
  h = fmix32(h ^ Math.floor(seed / 2 ** 32));
  for (let i = 0; i < key.length; i++) h = fmix32((h + 0x9e3779b9) ^ key.charCodeAt(i));
  // The key's length, so that "a" + "\0" and "a" cannot share a stream.
  return fmix32(h ^ key.length);
}

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  /** Box–Muller makes normals in pairs; the second waits here for the next call. */
  private spareNormal: number | undefined;

  constructor(seed: number) {
    checkSeed(seed);
    const state = { s: (seed >>> 0) ^ Math.floor(seed / 2 ** 32) };
    this.s0 = splitmix32(state);
    this.s1 = splitmix32(state);
    this.s2 = splitmix32(state);
    this.s3 = splitmix32(state);
    // xoshiro's all-zero state is a fixed point.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** The stream for one named tensor (e.g. "param:layers.0.lambda_q1") under `seed`. */
  static forKey(seed: number, key: string): Rng {
    return new Rng(streamSeed(seed, key));
  }

  /** xoshiro128**: the next uniformly distributed 32-bit word. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits, the full precision of a double. */
  uniform(): number {
    const high = this.nextUint32() >>> 5; // 27 bits
    const low = this.nextUint32() >>> 6; // 26 bits
    return (high * 2 ** 26 + low) / 2 ** 53;
  }

  /** Uniform integer in [0, n), n ≤ 2^32. */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /**
   * Standard normal by Box–Muller. Math.log/cos/sin are not exactly specified by
   * ECMAScript, but V8 uses the same fdlibm port on every platform, so Node is reproducible.
   */
  normal(): number {
    if (this.spareNormal !== undefined) {
      const z = this.spareNormal;
      this.spareNormal = undefined;
      return z;
    }
    const u1 = 1 - this.uniform(); // (0, 1]: log(0) would give an infinite sample
    const u2 = this.uniform();
    const radius = Math.sqrt(-2 * Math.log(u1));
    const angle = 2 * Math.PI * u2;
    this.spareNormal = radius * Math.sin(angle);
    return radius * Math.cos(angle);
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
