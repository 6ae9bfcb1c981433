// The protobuf wire format, write side only, for the few message shapes an ONNX model needs:
// varints, 32-bit floats, length-delimited fields (strings, bytes, nested messages) and packed
// repeated scalars. See https://protobuf.dev/programming-guides/encoding/.

const WIRE_VARINT = 0;
const WIRE_LENGTH_DELIMITED = 2;
const WIRE_FIXED32 = 5;

const utf8 = new TextEncoder();

/** Appends fields in the order they are written; `finish` concatenates them. */
export class ProtoWriter {
  private chunks: Uint8Array[] = [];
  private bytes: number[] = [];

  /** An int32/int64/enum/bool field. Negative values take ten bytes, as int64 on the wire does. */
  varint(field: number, value: number | boolean): this {
    this.tag(field, WIRE_VARINT);
    this.rawVarint(typeof value === "boolean" ? Number(value) : value);
    return this;
  }

  float(field: number, value: number): this {
    this.tag(field, WIRE_FIXED32);
    this.flushBytes();
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.chunks.push(b);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytesField(field, utf8.encode(value));
  }

  bytesField(field: number, value: Uint8Array): this {
    this.tag(field, WIRE_LENGTH_DELIMITED);
    this.rawVarint(value.length);
    this.flushBytes();
    this.chunks.push(value);
    return this;
  }

  message(field: number, build: (w: ProtoWriter) => void): this {
    const inner = new ProtoWriter();
    build(inner);
    return this.bytesField(field, inner.finish());
  }

  /** A packed repeated int64/int32 field (the default encoding in proto3). */
  packedVarints(field: number, values: readonly number[]): this {
    if (values.length === 0) return this;
    const inner = new ProtoWriter();
    for (const v of values) inner.rawVarint(v);
    return this.bytesField(field, inner.finish());
  }

  /** A packed repeated float field. */
  packedFloats(field: number, values: readonly number[]): this {
    if (values.length === 0) return this;
    const b = new Uint8Array(4 * values.length);
    const view = new DataView(b.buffer);
    values.forEach((v, i) => view.setFloat32(4 * i, v, true));
    return this.bytesField(field, b);
  }

  finish(): Uint8Array {
    this.flushBytes();
    let length = 0;
    for (const c of this.chunks) length += c.length;
    const out = new Uint8Array(length);
    let offset = 0;
    for (const c of this.chunks) {
      out.set(c, offset);
      offset += c.length;
    }
    return out;
  }

  private tag(field: number, wireType: number): void {
    this.rawVarint(field * 8 + wireType);
  }

  private rawVarint(value: number): void {
    if (!Number.isSafeInteger(value)) throw new Error(`protobuf: ${value} is not an integer that fits a varint exactly`);
    if (value >= 0 && value < 2 ** 31) {
      let v = value;
      while (v >= 0x80) {
        this.bytes.push((v & 0x7f) | 0x80);
        v >>>= 7;
      }
      this.bytes.push(v);
      return;
    }
    // Negative int64s are their two's complement as a 64-bit unsigned number.
    let v = value >= 0 ? BigInt(value) : BigInt.asUintN(64, BigInt(value));
    while (v >= 0x80n) {
      this.bytes.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.bytes.push(Number(v));
  }

  private flushBytes(): void {
    if (this.bytes.length === 0) return;
    this.chunks.push(Uint8Array.from(this.bytes));
    this.bytes = [];
  }
}
