/** Typed-array constructors by dtype name. */
export const DTYPES = Object.freeze({
  int8: Int8Array,
  uint8: Uint8Array,
  uint8clamped: Uint8ClampedArray,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  float32: Float32Array,
  float64: Float64Array,
  bigint64: BigInt64Array,
  biguint64: BigUint64Array,
} as const)

/** Element type names accepted by `array` and `view`. */
export type DType = keyof typeof DTYPES

/** The typed array `array`/`view` return for a dtype. */
export type TypedArrayOf<D extends DType> = InstanceType<(typeof DTYPES)[D]>

/** Any typed array constructor of {@link DTYPES}. @internal */
export type TypedArrayConstructor = (typeof DTYPES)[DType]

const hasOwn = Object.prototype.hasOwnProperty

/**
 * The constructor for `dtype`, or `undefined` for anything else: a `switch` on the string
 * (one pointer compare per case in optimized code), several times faster than a keyed
 * lookup in a table. `__test__/dtypes.spec.ts` checks it against {@link DTYPES}. @internal
 */
export function viewConstructor(dtype: unknown): TypedArrayConstructor | undefined {
  switch (dtype) {
    case 'uint8':
      return Uint8Array
    case 'float32':
      return Float32Array
    case 'float64':
      return Float64Array
    case 'int32':
      return Int32Array
    case 'int8':
      return Int8Array
    case 'uint8clamped':
      return Uint8ClampedArray
    case 'int16':
      return Int16Array
    case 'uint16':
      return Uint16Array
    case 'uint32':
      return Uint32Array
    case 'bigint64':
      return BigInt64Array
    case 'biguint64':
      return BigUint64Array
    default:
      return undefined
  }
}

/**
 * The constructor for `dtype`. @internal
 * @throws {TypeError} `ERR_INVALID_ARG_VALUE` for an unknown dtype.
 */
export function constructorOf(dtype: unknown): TypedArrayConstructor {
  if (typeof dtype === 'string' && hasOwn.call(DTYPES, dtype)) return DTYPES[dtype as DType]
  const error = new TypeError(
    `The "dtype" argument must be one of ${Object.keys(DTYPES).join(', ')}. Received ${String(dtype)}`,
  )
  throw Object.assign(error, { code: 'ERR_INVALID_ARG_VALUE' as const })
}

/** The dtype name of a typed array made by one of the {@link DTYPES} constructors. @internal */
export function dtypeOf(array: ArrayBufferView): DType | undefined {
  for (const name of Object.keys(DTYPES) as DType[]) {
    if (array.constructor === DTYPES[name]) return name
  }
  return undefined
}
