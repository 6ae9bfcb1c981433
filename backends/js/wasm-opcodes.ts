// The WebAssembly opcodes the JS backend's generated code uses, named as the specification's
// text format names them (i32.add is I32_ADD; SIMD ones follow the 0xfd prefix, which
// Body.simd writes). One table, so that each number is checked once against the spec.

// Control and parametric.
export const BLOCK = 0x02;
export const LOOP = 0x03;
export const IF = 0x04;
export const ELSE = 0x05;
export const END = 0x0b;
export const BR = 0x0c;
export const BR_IF = 0x0d;
export const SELECT = 0x1b;
/** The block type of a block, loop or if without a result. */
export const VOID = 0x40;

// Memory (each followed by its alignment and offset immediates).
export const I32_LOAD = 0x28;
export const F32_LOAD = 0x2a;
export const I32_LOAD8_S = 0x2c;
export const I32_LOAD8_U = 0x2d;
export const I32_STORE = 0x36;
export const F32_STORE = 0x38;
export const I32_STORE8 = 0x3a;

// Numeric.
export const F32_CONST = 0x43;
export const I32_EQZ = 0x45;
export const I32_EQ = 0x46;
export const I32_NE = 0x47;
export const I32_LT_S = 0x48;
export const I32_GT_S = 0x4a;
export const I32_GT_U = 0x4b;
export const I32_LE_S = 0x4c;
export const I32_GE_S = 0x4e;
export const F32_EQ = 0x5b;
export const F32_NE = 0x5c;
export const F32_LT = 0x5d;
export const F32_GT = 0x5e;
export const F32_LE = 0x5f;
export const F32_GE = 0x60;
export const I32_ADD = 0x6a;
export const I32_SUB = 0x6b;
export const I32_MUL = 0x6c;
export const I32_DIV_S = 0x6d;
export const I32_REM_S = 0x6f;
export const I32_AND = 0x71;
export const I32_OR = 0x72;
export const I32_XOR = 0x73;
export const I32_SHL = 0x74;
export const I32_SHR_S = 0x75;
export const F32_ABS = 0x8b;
export const F32_NEG = 0x8c;
export const F32_FLOOR = 0x8e;
export const F32_TRUNC = 0x8f;
export const F32_SQRT = 0x91;
export const F32_ADD = 0x92;
export const F32_SUB = 0x93;
export const F32_MUL = 0x94;
export const F32_DIV = 0x95;
export const F32_MIN = 0x96;
export const F32_MAX = 0x97;
export const F32_CONVERT_I32_S = 0xb2;
export const F32_DEMOTE_F64 = 0xb6;
export const I32_EXTEND8_S = 0xc0;

// SIMD: the prefix, then the opcode in LEB128 (Body.simd writes both).
export const SIMD_PREFIX = 0xfd;
export const V128_LOAD = 0x00;
export const V128_STORE = 0x0b;
export const V128_CONST = 0x0c;
export const I8X16_SHUFFLE = 0x0d;
export const I32X4_SPLAT = 0x11;
export const F32X4_SPLAT = 0x13;
export const F32X4_EXTRACT_LANE = 0x1f;
export const I32X4_EQ = 0x37;
export const I32X4_NE = 0x38;
export const I32X4_LT_S = 0x39;
export const I32X4_GT_S = 0x3b;
export const I32X4_LE_S = 0x3d;
export const I32X4_GE_S = 0x3f;
export const F32X4_EQ = 0x41;
export const F32X4_NE = 0x42;
export const F32X4_LT = 0x43;
export const F32X4_GT = 0x44;
export const F32X4_LE = 0x45;
export const F32X4_GE = 0x46;
export const V128_NOT = 0x4d;
export const V128_AND = 0x4e;
export const V128_ANDNOT = 0x4f;
export const V128_OR = 0x50;
export const V128_XOR = 0x51;
export const V128_BITSELECT = 0x52;
export const V128_LOAD32_LANE = 0x56;
export const V128_STORE32_LANE = 0x5a;
export const V128_LOAD32_ZERO = 0x5c;
export const F32X4_DEMOTE_F64X2_ZERO = 0x5e;
export const F64X2_PROMOTE_LOW_F32X4 = 0x5f;
export const I8X16_NARROW_I16X8_U = 0x66;
export const F32X4_FLOOR = 0x68;
export const F32X4_TRUNC = 0x69;
export const I16X8_NARROW_I32X4_U = 0x86;
export const I16X8_EXTEND_LOW_I8X16_U = 0x89;
export const I32X4_NEG = 0xa1;
export const I32X4_EXTEND_LOW_I16X8_U = 0xa9;
export const I32X4_SHL = 0xab;
export const I32X4_SHR_S = 0xac;
export const I32X4_ADD = 0xae;
export const I32X4_SUB = 0xb1;
export const I32X4_MUL = 0xb5;
export const I64X2_EXTEND_LOW_I32X4_S = 0xc7;
export const I64X2_EXTEND_HIGH_I32X4_S = 0xc8;
export const I64X2_SHL = 0xcb;
export const I64X2_ADD = 0xce;
export const F32X4_ABS = 0xe0;
export const F32X4_NEG = 0xe1;
export const F32X4_SQRT = 0xe3;
export const F32X4_ADD = 0xe4;
export const F32X4_SUB = 0xe5;
export const F32X4_MUL = 0xe6;
export const F32X4_DIV = 0xe7;
export const F32X4_MIN = 0xe8;
export const F32X4_MAX = 0xe9;
export const F32X4_PMIN = 0xea;
export const F32X4_PMAX = 0xeb;
export const F32X4_CONVERT_I32X4_S = 0xfa;
