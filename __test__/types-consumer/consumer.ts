// A strict consumer of the published declarations. __test__/published-types.spec.ts
// copies this file to consumer.mts (ESM) and consumer.cts (CommonJS) of a project that has
// only the packed dist/*.d.ts, and type-checks it with TypeScript 5 and 7, with and
// without @types/node and the esnext.disposable lib. Each `@ts-expect-error` fails the
// check if the error it expects is gone.
import {
  AllocatorError,
  type AllocatorErrorCode,
  type Arena,
  type ArgumentRangeError,
  type ArgumentTypeError,
  type NativeLoadError,
  type NativeLoadErrorCode,
  type OutOfMemoryError,
  type PlainAllocatorError,
  type TensorArenaError,
  type ThreadCache,
} from 'tensor-arena'
import { type ArenaReport, type ClassReport, type ReportTotals, report } from 'tensor-arena'

/** `instanceof AllocatorError`, then `switch (code)`: ERR_OUT_OF_MEMORY's fields are numbers. */
export function describeAllocatorError(error: unknown): string {
  if (!(error instanceof AllocatorError)) return 'not an AllocatorError'
  switch (error.code) {
    case 'ERR_OUT_OF_MEMORY': {
      const requested: number = error.requested
      const available: number = error.available
      const cap: number | undefined = error.maxBytes
      const narrowed: OutOfMemoryError = error
      return `${narrowed.message}: ${requested - available} short of ${cap ?? 'no cap'}`
    }
    case 'ERR_DOUBLE_FREE': {
      const one: AllocatorError<'ERR_DOUBLE_FREE'> = error
      const plain: PlainAllocatorError = one
      // @ts-expect-error only ERR_OUT_OF_MEMORY carries `requested`
      const requested: number = error.requested
      return `${plain.code} ${requested}`
    }
    default: {
      const rest: Exclude<AllocatorErrorCode, 'ERR_OUT_OF_MEMORY' | 'ERR_DOUBLE_FREE'> = error.code
      // @ts-expect-error ERR_OUT_OF_MEMORY was handled above
      const oom: 'ERR_OUT_OF_MEMORY' = error.code
      return `${rest} ${oom}`
    }
  }
}

/** Every error the package throws by design, discriminated by `code`. */
export function describeError(error: TensorArenaError): string {
  switch (error.code) {
    case 'ERR_INVALID_ARG_TYPE':
    case 'ERR_INVALID_ARG_VALUE': {
      const typeError: ArgumentTypeError = error
      const base: TypeError = typeError
      return base.message
    }
    case 'ERR_OUT_OF_RANGE': {
      const rangeError: ArgumentRangeError = error
      const base: RangeError = rangeError
      return base.message
    }
    case 'ERR_OUT_OF_MEMORY':
      return String(error.requested + error.available)
    default: {
      const allocatorError: PlainAllocatorError = error
      return allocatorError.code
    }
  }
}

/** The coded TypeError and RangeError codes are string literal unions. */
export const argumentCodes: [ArgumentTypeError['code'], ArgumentRangeError['code']] = [
  'ERR_INVALID_ARG_VALUE',
  'ERR_OUT_OF_RANGE',
]
// @ts-expect-error not a code of the argument TypeErrors
export const notATypeErrorCode: ArgumentTypeError['code'] = 'ERR_OUT_OF_RANGE'

/** What `require('tensor-arena')` throws without a loadable binary. */
export function describeLoadError(error: NativeLoadError): string {
  const code: NativeLoadErrorCode = error.code
  return `${code}: install ${error.packageName}@${error.version}`
}

/** `AllocatorError` is constructible with the fields its code requires. */
export const made: OutOfMemoryError = new AllocatorError('ERR_OUT_OF_MEMORY', 'full', { requested: 64, available: 0 })
export const plain: AllocatorError<'ERR_NOT_OWNED'> = new AllocatorError('ERR_NOT_OWNED', 'not ours')
// @ts-expect-error ERR_OUT_OF_MEMORY needs its details
export const incomplete = new AllocatorError('ERR_OUT_OF_MEMORY', 'full')

/** The dispose method is typed without the esnext.disposable lib. */
export function flushCache(arena: Arena): number {
  const cache: ThreadCache = arena.threadCache()
  const disposable: { [Symbol.dispose](): void } = cache
  disposable[Symbol.dispose]()
  const view: Float32Array = arena.view('float32', 4)
  arena.free(view)
  return cache.stats().classBlocks.length
}

/** The memory report is typed without @types/node (its util.inspect hook is not declared). */
export function describeMemory(arena: Arena): string {
  const r: ArenaReport = arena.report()
  const row: ClassReport | undefined = r.classes[0]
  const totals: ReportTotals = report().totals
  const cap: number | undefined = totals.maxBytes
  return `${r.toString()} ${row?.liveBlocks ?? 0} ${cap ?? 'no cap'} ${r.stats.liveBytes}`
}
