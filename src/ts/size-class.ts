import { checkCount } from './errors.js'

// Generated from the core's size-class table (crates/core/src/size_class.rs);
// __test__/size-class.spec.ts checks it against the native table.

/**
 * Size classes: requests of 1 byte to 16 MiB are rounded up to one of these. The key
 * names the class payload in bytes (the largest request it serves); the value is the
 * class index used in stats (`stats().classes[index]`).
 */
export const SizeClass = Object.freeze({
  B64: 0,
  B128: 1,
  B192: 2,
  B256: 3,
  B320: 4,
  B384: 5,
  B448: 6,
  B512: 7,
  B640: 8,
  B768: 9,
  B896: 10,
  B1024: 11,
  B1280: 12,
  B1536: 13,
  B1792: 14,
  B2048: 15,
  B2560: 16,
  B3072: 17,
  B3584: 18,
  B4096: 19,
  B5120: 20,
  B6144: 21,
  B7168: 22,
  B8192: 23,
  B10240: 24,
  B12288: 25,
  B14336: 26,
  B16384: 27,
  B20480: 28,
  B24576: 29,
  B28672: 30,
  B32768: 31,
  B40960: 32,
  B49152: 33,
  B57344: 34,
  B65536: 35,
  B81920: 36,
  B98304: 37,
  B114688: 38,
  B131072: 39,
  B163840: 40,
  B196608: 41,
  B229376: 42,
  B262144: 43,
  B327680: 44,
  B393216: 45,
  B458752: 46,
  B524288: 47,
  B655360: 48,
  B786432: 49,
  B917504: 50,
  B1048576: 51,
  B1310720: 52,
  B1572864: 53,
  B1835008: 54,
  B2097152: 55,
  B2621440: 56,
  B3145728: 57,
  B3670016: 58,
  B4194304: 59,
  B5242880: 60,
  B6291456: 61,
  B7340032: 62,
  B8388608: 63,
  B10485760: 64,
  B12582912: 65,
  B14680064: 66,
  B16777216: 67,
} as const)

/** A size-class index (a value of {@link SizeClass}). */
export type SizeClass = (typeof SizeClass)[keyof typeof SizeClass]

/** Payload bytes of each class, indexed by class index. */
export const SIZE_CLASS_BYTES: readonly number[] = Object.freeze([
  64, 128, 192, 256, 320, 384, 448, 512,
  640, 768, 896, 1024, 1280, 1536, 1792, 2048,
  2560, 3072, 3584, 4096, 5120, 6144, 7168, 8192,
  10240, 12288, 14336, 16384, 20480, 24576, 28672, 32768,
  40960, 49152, 57344, 65536, 81920, 98304, 114688, 131072,
  163840, 196608, 229376, 262144, 327680, 393216, 458752, 524288,
  655360, 786432, 917504, 1048576, 1310720, 1572864, 1835008, 2097152,
  2621440, 3145728, 3670016, 4194304, 5242880, 6291456, 7340032, 8388608,
  10485760, 12582912, 14680064, 16777216,
])

/** Largest request served by a size class; larger requests use the large path. */
export const MAX_SMALL_SIZE = 16 * 1024 * 1024

/**
 * The size class a request of `bytes` bytes is served from.
 *
 * @param bytes - request size in bytes: a safe integer.
 * @returns the class index, or `undefined` for 0 bytes and for requests above 16 MiB
 *   (served by the large path, not a class).
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `bytes` is not a number.
 * @throws {RangeError} `ERR_OUT_OF_RANGE` when `bytes` is negative or not a safe integer.
 */
export function sizeClassOf(bytes: number): SizeClass | undefined {
  checkCount(bytes, 'bytes')
  if (bytes === 0 || bytes > MAX_SMALL_SIZE) return undefined
  let lo = 0
  let hi = SIZE_CLASS_BYTES.length - 1
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (SIZE_CLASS_BYTES[mid] >= bytes) hi = mid
    else lo = mid + 1
  }
  return lo as SizeClass
}

/** Class index for each 64-byte step of requests up to 4 KiB. */
const SMALL_CLASS = Uint8Array.from({ length: 64 }, (_, step) => {
  let c = 0
  while (SIZE_CLASS_BYTES[c] < (step + 1) * 64) c++
  return c
})

/**
 * Class index of a request of `bytes` (1 ..= 16 MiB; 0 counts as 1), or -1 above 16 MiB.
 * Unchecked fast path for internal use: the same arithmetic as the core's table. @internal
 */
export function classIndexOf(bytes: number): number {
  if (bytes <= 4096) return SMALL_CLASS[bytes === 0 ? 0 : (bytes - 1) >>> 6]
  if (bytes > MAX_SMALL_SIZE) return -1
  const n = bytes - 1
  const e = 31 - Math.clz32(n)
  return 20 + (e - 12) * 4 + ((n >>> (e - 2)) & 3)
}
